/** `pgsnap unmount`: takes away what pgsnap mount placed for a restore (the drill's teardown, the cleanup path). */
import { parse, refuseTogether } from '../cli/args.ts';
import { restoreIdOf } from '../cli/restore-id.ts';
import { printUsage } from '../cli/usage.ts';
import { createContext } from '../host/context.ts';
import { open, requireRepositoryChoice } from '../host/repository.ts';
import { settingsFrom } from '../host/settings.ts';
import {
  answeringStepFunctions,
  heartbeatIntervalMs,
  taskTokenFlag,
  taskTokenOf,
} from '../host/task-token.ts';
import { recordDigestOf } from '../restore/read-record.ts';
import { unmountRestore } from '../restore/unmount-restore.ts';

export const unmountUsage = `pgsnap unmount --restore-id R --cluster C --repo URL [--stop-server [--systemd-unit U | --pg-bin DIR]]
               [--record-sha256 DIGEST] [--task-token-file F [--heartbeat-seconds S]] [--json]

Unmounts the volumes of restore R that pgsnap mount placed: only mounts of the
record's volumes' devices at their places, or the links it made. Nothing
mounted is success, and says so. With --stop-server the restored server is
stopped first (systemctl stop U, or pg_ctl -m fast, then -m immediate after
60 s); without it a server still running there is refused. With
--record-sha256, a record with another digest is refused. With a task token
the answer goes to Step Functions (SendTaskSuccess / SendTaskFailure).`;

export async function unmountCommand(args: string[]): Promise<number> {
  const { values } = parse('unmount', args, {
    'restore-id': { type: 'string' },
    'stop-server': { type: 'boolean', default: false },
    'systemd-unit': { type: 'string' },
    'pg-bin': { type: 'string' },
    'record-sha256': { type: 'string' },
    ...taskTokenFlag,
  });
  if (values.help) return printUsage(unmountUsage);
  refuseTogether('unmount', values, ['systemd-unit', 'pg-bin']);
  const restoreId = restoreIdOf('unmount', values['restore-id']);
  const { systemdUnit } = settingsFrom(
    values['systemd-unit'] !== undefined ? { 'systemd-unit': values['systemd-unit'] } : {},
  );
  const recordSha256 = recordDigestOf('unmount', values['record-sha256']);
  const ctx = createContext(values);
  const repository = await open(requireRepositoryChoice('unmount', values));
  try {
    const progress = (message: string) => ctx.out.progress(message);
    const result = await answeringStepFunctions(
      taskTokenOf(values),
      () =>
        unmountRestore(repository, {
          restoreId,
          ...(recordSha256 ? { recordSha256 } : {}),
          stopServer: values['stop-server'],
          // The SSM document passes no unit: the host's settings file (PGSNAP_SYSTEMD_UNIT) names it.
          ...(systemdUnit ? { systemdUnit } : {}),
          ...(values['pg-bin'] ? { pgBin: values['pg-bin'] } : {}),
        }),
      (done) => ({ ...done }),
      { progress, heartbeatMs: heartbeatIntervalMs(values['heartbeat-seconds']) },
    );
    const lines = [
      `server on ${result.pgdata}: ${result.server}`,
      ...result.volumes.map((v) => `${v.volumeId} at ${v.mountPoint}: ${v.action}`),
    ];
    if (result.volumes.every((v) => v.action === 'not mounted'))
      lines.push('nothing of this restore was mounted');
    ctx.out.result({ ...result }, lines);
  } finally {
    repository.close();
  }
  return 0;
}
