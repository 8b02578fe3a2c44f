/**
 * `pgsnap restore --backup-id ID --pgdata DIR`: prepares a data directory
 * restored from a snapshot of a backup (volumes created and mounted, or a copy)
 * so that PostgreSQL recovers it correctly, from the backup's artifacts and WAL
 * in the repository.
 */

import { UsageError } from '#domain/errors';
import { validateBackupId } from '#domain/ids';
import { conninfoHasPassword, conninfoPasswordRefused } from '#domain/restore/request';
import { table } from '../cli/output.ts';
import {
  hostFlags,
  hostRestoreUsage,
  parseRecoveryTarget,
  parseRestoreFlags,
  parseTablespaces,
  restoreUsage,
  targetActions,
} from '../cli/restore-flags.ts';
import { progressOutput } from '../cli/terminal-progress.ts';
import { printUsage } from '../cli/usage.ts';
import { createContext } from '../host/context.ts';
import { open, requireRepositoryChoice } from '../host/repository.ts';
import { settingsFrom } from '../host/settings.ts';
import { type Materialized, materializeSnapshots } from '../providers/materialize.ts';
import { type RestoreResult, restoreBackup } from '../restore/restore-backup.ts';

export async function restorePrepareCommand(args: string[]): Promise<number> {
  const { values } = parseRestoreFlags(args);
  if (values.help) return printUsage(`${restoreUsage}\n${hostRestoreUsage}`);
  for (const flag of hostFlags) {
    if (values[flag] !== undefined) throw new UsageError(`pgsnap restore: --${flag} goes with --restore-id`);
  }
  if (!values['backup-id'])
    throw new UsageError('pgsnap restore: --backup-id is required (pgsnap backups list shows them)');
  if (!values.pgdata)
    throw new UsageError('pgsnap restore: --pgdata DIR is required: the restored data directory');
  const backupId = validateBackupId(values['backup-id']);
  const action = values['target-action'];
  if (action !== undefined && !(targetActions as readonly string[]).includes(action)) {
    throw new UsageError(
      `--target-action must be one of ${targetActions.join(', ')}; got ${JSON.stringify(action)}`,
    );
  }
  if (values.standby !== !!values['primary-conninfo']) {
    throw new UsageError(
      '--standby and --primary-conninfo go together: a standby needs the primary to follow',
    );
  }
  if (values['primary-conninfo'] && conninfoHasPassword(values['primary-conninfo'])) {
    throw new UsageError(`--primary-conninfo: ${conninfoPasswordRefused}`);
  }
  if (values.standby && action) throw new UsageError('cannot specify both --standby and --target-action');
  const tablespaces = parseTablespaces(values.tablespace);
  const ahead = settingsFrom(values).prefetch;
  if (values['spool-dir'] !== undefined && ahead === 0)
    throw new UsageError('--spool-dir needs --prefetch N');
  const target = parseRecoveryTarget(values);
  const ctx = createContext(values);
  const choice = requireRepositoryChoice('restore', values);
  const out = progressOutput(ctx.out);

  const repository = await open(choice);
  let result: RestoreResult;
  let materialized: Materialized | undefined;
  try {
    if (values['from-snapshot']) {
      const manifest = await repository.readManifest(backupId);
      if (manifest?.state === 'completed') {
        out.progress(`putting the snapshots of backup ${backupId} in place at ${values.pgdata}`);
        materialized = await materializeSnapshots(manifest, values.pgdata, tablespaces);
      }
      // Otherwise restoreBackup says what is wrong with the backup.
    }
    out.progress(
      `preparing ${values.pgdata} from backup ${backupId}: artifacts, stale files, recovery settings`,
    );
    result = await restoreBackup(repository, choice, {
      backupId,
      pgdata: values.pgdata,
      ...(target ? { target: target.target, targetFlag: target.flag } : {}),
      ...(action ? { targetAction: action as (typeof targetActions)[number] } : {}),
      ...(tablespaces ? { tablespaces } : {}),
      keepArchiving: values['keep-archiving'],
      ...(values.waldir ? { walDir: values.waldir } : {}),
      ...(values.standby ? { standby: { primaryConninfo: values['primary-conninfo']! } } : {}),
      prefetch: { ahead, ...(values['spool-dir'] ? { spoolDir: values['spool-dir'] } : {}) },
    });
  } catch (error) {
    await materialized?.discard();
    throw error;
  } finally {
    out.stop();
    repository.close();
  }
  const { target: shown } = result;
  out.result(
    {
      ...result,
      ...(materialized
        ? { fromSnapshot: { provider: materialized.provider, targets: materialized.targets } }
        : {}),
    },
    [
      ...table([
        ['backupId', result.backupId],
        ['pgdata', result.pgdata],
        [
          'from snapshot',
          materialized ? `${materialized.provider}: ${materialized.targets.join(', ')}` : undefined,
        ],
        ['consistent at', result.stopLsn],
        [
          'target',
          shown.kind === 'end of WAL'
            ? 'end of the archived WAL'
            : `${shown.kind}${shown.value ? ` ${shown.value}` : ''}`,
        ],
        ['archiving', result.archiving],
        ['restore_command', result.restoreCommand],
      ]),
      `ready: start the server on ${result.pgdata} (pg_ctl -D ${result.pgdata} start)`,
    ],
  );
  return 0;
}
