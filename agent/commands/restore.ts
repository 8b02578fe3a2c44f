/**
 * `pgsnap restore`: prepares a data directory restored from a snapshot of a
 * backup (volumes created and mounted, or a copy) so that PostgreSQL recovers it
 * correctly, from the backup's artifacts and WAL in the repository.
 */

import { validateBackupId } from '#domain/backup/input';
import { UsageError } from '#domain/errors';
import { parseLsn } from '#domain/wal/lsn';
import { parse, refuseTogether } from '../cli/args.ts';
import { createContext } from '../cli/context.ts';
import { table } from '../cli/output.ts';
import { open, requireRepositoryChoice } from '../cli/repository-options.ts';
import { restoreIdOf } from '../cli/restore-id.ts';
import {
  answeringStepFunctions,
  heartbeatIntervalMs,
  taskTokenFlag,
  taskTokenOf,
} from '../cli/task-token.ts';
import { progressOutput } from '../cli/terminal-progress.ts';
import { printUsage } from '../cli/usage.ts';
import type { RecoveryTarget } from '../restore/prepare.ts';
import { recordDigestOf } from '../restore/read-record.ts';
import { type RestoreResult, restoreBackup } from '../restore/restore-backup.ts';
import { restoreOnHost } from '../restore/restore-on-host.ts';

export const restoreUsage = `pgsnap restore --restore-id R --repo URL --cluster NAME [--systemd-unit U | --pg-bin DIR]
               [--record-sha256 DIGEST] [--recovery-timeout SECONDS] [--task-token-file F [--heartbeat-seconds S]] [--json]
pgsnap restore --backup-id ID --pgdata DIR --repo URL --cluster NAME
               [--tablespace OID=DIR ...] [--target-time T | --target-lsn L | --target-name N | --target immediate]
               [--target-action promote|pause|shutdown] [--standby --primary-conninfo CONNINFO]
               [--waldir DIR] [--keep-archiving] [--prefetch N [--spool-dir DIR]] [--json]

Prepares DIR, a data directory restored from a snapshot of backup ID, for
recovery: checks it is the backup's cluster, removes what must not survive,
writes backup_label and tablespace_map byte for byte after checking their
sha256, turns archiving off (unless --keep-archiving), and sets
restore_command to pgsnap wal-fetch, the signal file and the target. Then
start the server on DIR.

--prefetch N     restore_command keeps the next N segments fetched and
                 verified ahead of recovery, and moves them into place with
                 the shell, without starting pgsnap for each (8 is a good
                 start when the repository is S3)
--spool-dir DIR  where prefetched segments wait (default: pg_wal/pgsnap-prefetch
                 of DIR, on the file system of pg_wal, so that taking one is a
                 rename)`;

const hostRestoreUsage = `
With --restore-id, the whole restore on a target host, as the restore state
machine asks for it: reads the restore record R from the repository, mounts
its volumes (as pgsnap mount), prepares PGDATA as above from the record
(backup, target, standby with primary_conninfo, tablespaces and pg_wal below
the record's mountRoot, archiving off, the record's port), starts PostgreSQL
(systemctl start U, or pg_ctl -D PGDATA start as its owner, pg_ctl from
--pg-bin, PGSNAP_PG_BIN or /usr/lib/postgresql/<version>/bin), waits
until it is consistent and has promoted at its target (a standby: replayed
past the backup's stop LSN), and runs the record's checks (consistency,
pg_amcheck, checksum failures, the SQL check). Prints the host report; with a
task token (PGSNAP_TASK_TOKEN or --task-token-file) sends it with
SendTaskSuccess, also when a check failed (ok: false), and SendTaskFailure
with the error's name when the restore cannot go on (MountPointInUseError,
VolumeNotFoundError, RecoveryTargetNotReachedError, ...). The restored server
is reached with the libpq settings (PGHOST, PGUSER, ...) and the record's port.

--record-sha256 D      act only on a record with this digest (the restore document passes
                       the one the state machine recorded); any other is refused
--recovery-timeout S   give up waiting for recovery after S seconds (default 21600)`;

const targetActions = ['promote', 'pause', 'shutdown'] as const;

/**
 * One recovery target at most, as the flags give it; restoreBackup checks it
 * against the backup's consistency point.
 */
function parseRecoveryTarget(values: {
  'target-time'?: string;
  'target-lsn'?: string;
  'target-name'?: string;
  target?: string;
}): { target: RecoveryTarget; flag: string } | undefined {
  refuseTogether('restore', values, ['target-time', 'target-lsn', 'target-name', 'target']);
  if (values.target !== undefined) {
    if (values.target !== 'immediate') {
      throw new UsageError(
        `--target takes only "immediate" (the end of the backup); got ${JSON.stringify(values.target)}`,
      );
    }
    return { target: { kind: 'immediate' }, flag: '--target immediate' };
  }
  if (values['target-lsn'] !== undefined) {
    try {
      parseLsn(values['target-lsn']);
    } catch (error) {
      throw new UsageError(`--target-lsn: ${(error as Error).message}`);
    }
    return {
      target: { kind: 'lsn', value: values['target-lsn'] },
      flag: `--target-lsn ${values['target-lsn']}`,
    };
  }
  if (values['target-time'] !== undefined) {
    const time = Date.parse(values['target-time']);
    if (Number.isNaN(time) || !/[zZ]|[+-]\d\d(:?\d\d)?$/.test(values['target-time'])) {
      throw new UsageError(
        `--target-time ${JSON.stringify(values['target-time'])} is not a time with a zone; use e.g. 2026-11-21T14:30:00Z`,
      );
    }
    return {
      target: { kind: 'time', value: new Date(time).toISOString() },
      flag: `--target-time ${values['target-time']}`,
    };
  }
  if (values['target-name'] !== undefined) {
    if (values['target-name'] === '' || Buffer.byteLength(values['target-name']) > 63) {
      throw new UsageError('--target-name must be the name given to pg_create_restore_point (1 to 63 bytes)');
    }
    return {
      target: { kind: 'name', value: values['target-name'] },
      flag: `--target-name ${values['target-name']}`,
    };
  }
  return undefined;
}

/** `--tablespace OID=DIR`, once per tablespace that moves; one place for each OID. */
export function parseTablespaces(specs: string[] | undefined): Record<string, string> | undefined {
  if (!specs?.length) return undefined;
  const locations: Record<string, string> = {};
  for (const spec of specs) {
    const match = /^(\d+)=(\/.*)$/.exec(spec);
    if (!match)
      throw new UsageError(
        `--tablespace ${JSON.stringify(spec)}: use OID=/absolute/dir, e.g. 16384=/mnt/ts1`,
      );
    const oid = match[1]!;
    const dir = match[2]!;
    if (locations[oid] !== undefined && locations[oid] !== dir) {
      throw new UsageError(
        `--tablespace ${oid} is given two places (${locations[oid]} and ${dir}); give each tablespace OID once`,
      );
    }
    locations[oid] = dir;
  }
  return locations;
}

/** Flags of the prepare-only mode, which --restore-id replaces with the restore record. */
const prepareFlags = [
  'backup-id',
  'pgdata',
  'tablespace',
  'target-time',
  'target-lsn',
  'target-name',
  'target',
  'target-action',
  'standby',
  'primary-conninfo',
  'keep-archiving',
  'waldir',
  'prefetch',
  'spool-dir',
] as const;

async function hostRestore(values: {
  'restore-id'?: string;
  'systemd-unit'?: string;
  'pg-bin'?: string;
  'recovery-timeout'?: string;
  'record-sha256'?: string;
  'task-token'?: string;
  'task-token-file'?: string;
  'heartbeat-seconds'?: string;
  json: boolean;
  repo?: string;
  cluster?: string;
}): Promise<number> {
  refuseTogether('restore', values, ['systemd-unit', 'pg-bin']);
  const restoreId = restoreIdOf('restore', values['restore-id']);
  const timeout = values['recovery-timeout'] ?? '21600';
  if (!/^[1-9][0-9]{0,7}$/.test(timeout)) {
    throw new UsageError(`--recovery-timeout ${timeout}: give a whole number of seconds, e.g. 3600`);
  }
  const recordSha256 = recordDigestOf('restore', values['record-sha256']);
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
          ...((values['systemd-unit'] ?? process.env.PGSNAP_SYSTEMD_UNIT)
            ? { systemdUnit: values['systemd-unit'] ?? process.env.PGSNAP_SYSTEMD_UNIT! }
            : {}),
          ...(values['pg-bin'] ? { pgBin: values['pg-bin'] } : {}),
          timeoutMs: Number(timeout) * 1000,
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

export async function restoreCommand(args: string[]): Promise<number> {
  const { values } = parse('restore', args, {
    'restore-id': { type: 'string' },
    'systemd-unit': { type: 'string' },
    'pg-bin': { type: 'string' },
    'recovery-timeout': { type: 'string' },
    'record-sha256': { type: 'string' },
    ...taskTokenFlag,
    'backup-id': { type: 'string' },
    pgdata: { type: 'string' },
    repo: { type: 'string' },
    tablespace: { type: 'string', multiple: true },
    'target-time': { type: 'string' },
    'target-lsn': { type: 'string' },
    'target-name': { type: 'string' },
    target: { type: 'string' },
    'target-action': { type: 'string' },
    standby: { type: 'boolean', default: false },
    'primary-conninfo': { type: 'string' },
    'keep-archiving': { type: 'boolean', default: false },
    waldir: { type: 'string' },
    prefetch: { type: 'string' },
    'spool-dir': { type: 'string' },
  });
  if (values.help) return printUsage(`${restoreUsage}\n${hostRestoreUsage}`);
  if (values['restore-id'] !== undefined) {
    const given = prepareFlags.filter((flag) => values[flag] !== undefined && values[flag] !== false);
    if (given.length > 0) {
      throw new UsageError(
        `pgsnap restore: --restore-id takes the backup, target and places from the restore record; ` +
          `cannot specify it with ${given.map((f) => `--${f}`).join(', ')}`,
      );
    }
    return hostRestore(values);
  }
  for (const flag of [
    'systemd-unit',
    'pg-bin',
    'recovery-timeout',
    'record-sha256',
    'task-token',
    'task-token-file',
  ] as const) {
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
  if (values.standby && action) throw new UsageError('cannot specify both --standby and --target-action');
  const tablespaces = parseTablespaces(values.tablespace);
  const ahead = values.prefetch === undefined ? 0 : Number(values.prefetch);
  if (!Number.isInteger(ahead) || ahead < 0 || ahead > 64) {
    throw new UsageError('--prefetch must be a whole number of segments from 0 to 64');
  }
  if (values['spool-dir'] !== undefined && ahead === 0)
    throw new UsageError('--spool-dir needs --prefetch N');
  const target = parseRecoveryTarget(values);
  const ctx = createContext(values);
  const choice = requireRepositoryChoice('restore', values);
  const out = progressOutput(ctx.out);

  const repository = await open(choice);
  let result: RestoreResult;
  try {
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
  } finally {
    out.stop();
    repository.close();
  }
  const { target: shown } = result;
  out.result({ ...result }, [
    ...table([
      ['backupId', result.backupId],
      ['pgdata', result.pgdata],
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
  ]);
  return 0;
}
