/**
 * `pgsnap restore --restore-id R`: the whole restore on a target host, as the
 * restore state machine asks for it, from the restore record in the repository.
 */
import { UsageError } from '#domain/errors';
import { refuseTogether } from '../cli/args.ts';
import { table } from '../cli/output.ts';
import { hostRestoreUsage, parseRestoreFlags, prepareFlags, restoreUsage } from '../cli/restore-flags.ts';
import { restoreIdOf } from '../cli/restore-id.ts';
import { printUsage } from '../cli/usage.ts';
import { createContext } from '../host/context.ts';
import { open, requireRepositoryChoice } from '../host/repository.ts';
import { settingsFrom } from '../host/settings.ts';
import { answeringStepFunctions, heartbeatIntervalMs, taskTokenOf } from '../host/task-token.ts';
import { recordDigestOf } from '../restore/read-record.ts';
import { restoreOnHost } from '../restore/restore-on-host.ts';

export async function restoreHostCommand(args: string[]): Promise<number> {
  const { values } = parseRestoreFlags(args);
  if (values.help) return printUsage(`${restoreUsage}\n${hostRestoreUsage}`);
  const given = prepareFlags.filter((flag) => values[flag] !== undefined && values[flag] !== false);
  if (given.length > 0) {
    throw new UsageError(
      `pgsnap restore: --restore-id takes the backup, target and places from the restore record; ` +
        `cannot specify it with ${given.map((f) => `--${f}`).join(', ')}`,
    );
  }
  refuseTogether('restore', values, ['systemd-unit', 'pg-bin']);
  const restoreId = restoreIdOf('restore', values['restore-id']);
  const recordSha256 = recordDigestOf('restore', values['record-sha256']);
  const settings = settingsFrom({
    ...(values['recovery-timeout'] !== undefined ? { 'recovery-timeout': values['recovery-timeout'] } : {}),
    ...(values['systemd-unit'] !== undefined ? { 'systemd-unit': values['systemd-unit'] } : {}),
  });
  const ctx = createContext(values);
  const choice = requireRepositoryChoice('restore', values);
  const progress = (message: string) => ctx.out.progress(message);
  const repository = await open(choice);
  try {
    const report = await answeringStepFunctions(
      taskTokenOf(values),
      () =>
        restoreOnHost(repository, choice, {
          restoreId,
          ...(recordSha256 ? { recordSha256 } : {}),
          // The SSM document passes no unit: the host's settings file (PGSNAP_SYSTEMD_UNIT) names it.
          ...(settings.systemdUnit ? { systemdUnit: settings.systemdUnit } : {}),
          ...(values['pg-bin'] ? { pgBin: values['pg-bin'] } : {}),
          timeoutMs: settings.recoveryTimeoutMs,
          progress,
        }),
      (result) => ({ ...result }),
      { progress, heartbeatMs: heartbeatIntervalMs(values['heartbeat-seconds']) },
    );
    ctx.out.result({ ...report }, [
      ...report.mounts.map(
        (m) => `mounted: ${m.volumeId} ${m.device} at ${m.mountPoint}${m.options ? ` (${m.options})` : ''}`,
      ),
      ...table([
        ['pgdata', report.pgdata],
        ['replayed to', report.replayLsn],
        ['last replayed commit', report.lastReplayedCommit],
        ['accepting since', report.timings.acceptingAt],
      ]),
      ...Object.entries(report.checks).map(
        ([name, c]) => `check ${name}: ${c.ok ? 'ok' : 'FAILED'}: ${c.detail}`,
      ),
      report.ok ? 'restored: every check passed' : 'restored, but a check failed',
    ]);
    // The restore itself went through; a failed check is the report's to tell (exit 1 for a person at a shell).
    return report.ok ? 0 : 1;
  } finally {
    repository.close();
  }
}
