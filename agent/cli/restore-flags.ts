/**
 * The flags of `pgsnap restore`, its two forms: with --restore-id, the whole restore on this host from the
 * restore record (commands/restore-host.ts); with --backup-id, a data directory prepared for recovery
 * (commands/restore-prepare.ts). Both parse the same flags, so that a flag of the other form is refused
 * with a message naming the form it goes with.
 */
import { UsageError } from '#domain/errors';
import { recoveryTargetTime } from '#domain/restore/request';
import { parseLsn } from '#domain/wal/lsn';
import { taskTokenFlag } from '../host/task-token.ts';
import type { RecoveryTarget } from '../restore/prepare.ts';
import { parse, refuseTogether } from './args.ts';

export const restoreUsage = `pgsnap restore --restore-id R --repo URL --cluster NAME [--systemd-unit U | --pg-bin DIR]
               [--record-sha256 DIGEST] [--recovery-timeout SECONDS] [--task-token-file F [--heartbeat-seconds S]] [--json]
pgsnap restore --backup-id ID --pgdata DIR --repo URL --cluster NAME [--from-snapshot]
               [--tablespace OID=DIR ...] [--target-time T | --target-lsn L | --target-name N | --target immediate]
               [--target-action promote|pause|shutdown] [--standby --primary-conninfo CONNINFO]
               [--waldir DIR] [--keep-archiving] [--prefetch N [--spool-dir DIR]] [--json]

Prepares DIR, a data directory restored from a snapshot of backup ID, for
recovery: checks it is the backup's cluster, removes what must not survive,
writes backup_label and tablespace_map byte for byte after checking their
sha256, turns archiving off (unless --keep-archiving), and sets
restore_command to pgsnap wal-fetch, the signal file and the target. Then
start the server on DIR.

--from-snapshot  first put the backup's snapshots in place, for the local
                 providers (copy, btrfs): DIR (new or empty) becomes a copy
                 or a writable btrfs snapshot of the backup's data directory,
                 each tablespace's the directory --tablespace OID=DIR names;
                 removed again if the preparation then fails

--prefetch N     restore_command keeps the next N segments fetched and
                 verified ahead of recovery, and moves them into place with
                 the shell, without starting pgsnap for each (8 is a good
                 start when the repository is S3)
--spool-dir DIR  where prefetched segments wait (default: pg_wal/pgsnap-prefetch
                 of DIR, on the file system of pg_wal, so that taking one is a
                 rename)`;

export const hostRestoreUsage = `
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
--recovery-timeout S   give up waiting for recovery after S seconds, or a duration such as 6h
                       (default 21600)`;

export const restoreFlags = {
  'restore-id': { type: 'string' },
  'systemd-unit': { type: 'string' },
  'pg-bin': { type: 'string' },
  'recovery-timeout': { type: 'string' },
  'record-sha256': { type: 'string' },
  ...taskTokenFlag,
  'backup-id': { type: 'string' },
  'from-snapshot': { type: 'boolean', default: false },
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
} as const;

/** Parses `pgsnap restore`'s flags, either form. */
export function parseRestoreFlags(args: string[]) {
  return parse('restore', args, restoreFlags);
}

export const targetActions = ['promote', 'pause', 'shutdown'] as const;

/**
 * One recovery target at most, as the flags give it; restoreBackup checks it
 * against the backup's consistency point.
 */
export function parseRecoveryTarget(values: {
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
    const time = recoveryTargetTime(values['target-time']);
    if (time === undefined) {
      throw new UsageError(
        `--target-time ${JSON.stringify(values['target-time'])} is not a time with a zone; use e.g. 2026-11-21T14:30:00Z`,
      );
    }
    return {
      target: { kind: 'time', value: time },
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
export const prepareFlags = [
  'backup-id',
  'from-snapshot',
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

/** Flags of the whole restore here, which the prepare-only mode does not take. */
export const hostFlags = [
  'systemd-unit',
  'pg-bin',
  'recovery-timeout',
  'record-sha256',
  'task-token',
  'task-token-file',
] as const;
