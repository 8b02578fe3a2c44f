/**
 * `pgsnap restore`: prepares a data directory restored from a snapshot of a
 * backup (volumes created and mounted, or a copy) so that PostgreSQL recovers it
 * correctly, from the backup's artifacts and WAL in the repository.
 */

import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { validateBackupId } from '#domain/backup/input';
import { PreconditionError, UsageError } from '#domain/errors';
import type { Manifest } from '#domain/repository/manifest';
import { parseLsn } from '#domain/wal/lsn';
import { parse, refuseTogether } from '../cli/args.ts';
import { createContext } from '../cli/context.ts';
import { table } from '../cli/output.ts';
import { open, requireRepositoryChoice } from '../cli/repository-options.ts';
import { printUsage } from '../cli/usage.ts';
import { pgVersionOf, systemIdentifierOf } from '../postgres/pgdata.ts';
import { prepareDataDirectory, type RecoveryTarget } from '../restore/prepare.ts';
import { requireServerCanRun } from '../restore/server-can-run.ts';
import {
  commandLimitBefore16,
  defaultPrefetchSpool,
  expandedLength,
  plainRestoreCommandLine,
  restoreCommandLine,
  selfCommand,
} from '../wal/shell-lines.ts';

export const restoreUsage = `pgsnap restore --backup-id ID --pgdata DIR --repo URL --cluster NAME
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

const targetActions = ['promote', 'pause', 'shutdown'] as const;

/** One recovery target at most, checked against the backup's consistency point. */
export function recoveryTarget(
  values: { 'target-time'?: string; 'target-lsn'?: string; 'target-name'?: string; target?: string },
  manifest: Manifest,
): RecoveryTarget | undefined {
  refuseTogether('restore', values, ['target-time', 'target-lsn', 'target-name', 'target']);
  const stop = `the backup's consistency point (${manifest.stopLsn} at ${manifest.timings.stoppedAt})`;
  if (values.target !== undefined) {
    if (values.target !== 'immediate') {
      throw new UsageError(
        `--target takes only "immediate" (the end of the backup); got ${JSON.stringify(values.target)}`,
      );
    }
    return { kind: 'immediate' };
  }
  if (values['target-lsn'] !== undefined) {
    let lsn: bigint;
    try {
      lsn = parseLsn(values['target-lsn']);
    } catch (error) {
      throw new UsageError(`--target-lsn: ${(error as Error).message}`);
    }
    if (manifest.stopLsn && lsn < parseLsn(manifest.stopLsn)) {
      throw new PreconditionError(
        `--target-lsn ${values['target-lsn']} is before ${stop}: PostgreSQL would stop recovery before the ` +
          'restored files are consistent. Choose a later target, or restore an earlier backup.',
      );
    }
    return { kind: 'lsn', value: values['target-lsn'] };
  }
  if (values['target-time'] !== undefined) {
    const time = Date.parse(values['target-time']);
    if (Number.isNaN(time) || !/[zZ]|[+-]\d\d(:?\d\d)?$/.test(values['target-time'])) {
      throw new UsageError(
        `--target-time ${JSON.stringify(values['target-time'])} is not a time with a zone; use e.g. 2026-11-21T14:30:00Z`,
      );
    }
    if (manifest.timings.stoppedAt && time < Date.parse(manifest.timings.stoppedAt)) {
      throw new PreconditionError(
        `--target-time ${values['target-time']} is before ${stop}: PostgreSQL would stop recovery before the ` +
          'restored files are consistent. Choose a later time, or restore an earlier backup.',
      );
    }
    return { kind: 'time', value: new Date(time).toISOString() };
  }
  if (values['target-name'] !== undefined) {
    if (values['target-name'] === '' || Buffer.byteLength(values['target-name']) > 63) {
      throw new UsageError('--target-name must be the name given to pg_create_restore_point (1 to 63 bytes)');
    }
    return { kind: 'name', value: values['target-name'] };
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

/**
 * The command PostgreSQL will run to fetch WAL: this very pgsnap, with the
 * repository in its flags; with prefetch, the shell fast path that moves
 * prefetched segments into place without starting pgsnap.
 */
export function walFetchCommand(
  url: string,
  cluster: string,
  prefetch?: { ahead: number; spool: string },
  pgsnap: string[] = selfCommand(),
): string {
  return prefetch
    ? restoreCommandLine({ url, cluster, prefetch: prefetch.ahead, spool: prefetch.spool, pgsnap })
    : plainRestoreCommandLine({ url, cluster, pgsnap });
}

export async function restoreCommand(args: string[]): Promise<number> {
  const { values } = parse('restore', args, {
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
  if (values.help) return printUsage(restoreUsage);
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
  const ctx = createContext(values);
  const choice = requireRepositoryChoice('restore', values);

  const repository = await open(choice);
  try {
    const manifest = await repository.readManifest(backupId);
    if (!manifest) {
      throw new PreconditionError(
        `there is no backup ${backupId} in ${repository.url}; pgsnap backups list shows what there is`,
      );
    }
    if (manifest.state !== 'completed') {
      throw new PreconditionError(
        `backup ${backupId} is ${manifest.state}, not completed${manifest.failure ? ` (${manifest.failure.reason})` : ''}; ` +
          'only a completed backup can be restored',
      );
    }
    const target = recoveryTarget(values, manifest);
    const pgdata = values.pgdata;
    let found: string;
    try {
      found = systemIdentifierOf(pgdata);
    } catch (error) {
      throw new PreconditionError(`${pgdata} is not a restored data directory: ${(error as Error).message}`);
    }
    if (found !== manifest.systemIdentifier) {
      throw new PreconditionError(
        `${pgdata} holds the cluster with system identifier ${found}, but backup ${backupId} was taken of ` +
          `${manifest.cluster} (system identifier ${manifest.systemIdentifier}); restore this backup's own snapshot`,
      );
    }

    const artifact = async (name: string) => {
      const record = manifest.artifacts.find((a) => a.name === name);
      return record
        ? { record, text: (await repository.readArtifact(backupId, record)).toString('utf8') }
        : undefined;
    };
    const label = await artifact('backup_label');
    if (!label)
      throw new PreconditionError(
        `backup ${backupId} has no backup_label in its manifest; it cannot be restored`,
      );
    const map = await artifact('tablespace_map');
    const restoreCommandLine = walFetchCommand(
      choice.url,
      choice.cluster,
      ahead > 0
        ? { ahead, spool: resolve(values['spool-dir'] ?? defaultPrefetchSpool(resolve(pgdata))) }
        : undefined,
    );
    const major = Number(pgVersionOf(pgdata) ?? 16);
    if (major < 16 && expandedLength(restoreCommandLine) > commandLimitBefore16) {
      throw new PreconditionError(
        `the restore_command would be ${expandedLength(restoreCommandLine)} bytes, and PostgreSQL ${major} ` +
          `cuts it at ${commandLimitBefore16}: give a shorter --spool-dir, or install pgsnap under a shorter path`,
      );
    }
    // The server on PGDATA runs as its owner; whoever runs this restore (often root) may reach more.
    requireServerCanRun(selfCommand(), statSync(pgdata).uid, 'restore_command');
    prepareDataDirectory({
      pgdata,
      backupLabel: label.text,
      expectedSha256: {
        backupLabel: label.record.sha256,
        ...(map ? { tablespaceMap: map.record.sha256 } : {}),
      },
      ...(map ? { tablespaceMap: map.text } : {}),
      ...(tablespaces ? { tablespaces } : {}),
      restoreCommand: restoreCommandLine,
      ...(target ? { target, targetAction: (action as (typeof targetActions)[number]) ?? 'promote' } : {}),
      keepArchiving: values['keep-archiving'],
      ...(values.waldir ? { walDir: values.waldir } : {}),
      ...(values.standby ? { standby: { primaryConninfo: values['primary-conninfo']! } } : {}),
    });
    const result = {
      backupId,
      pgdata,
      systemIdentifier: found,
      stopLsn: manifest.stopLsn,
      target: target ?? { kind: 'end of WAL' },
      mode: values.standby ? 'standby' : 'recovery',
      archiving: values['keep-archiving'] ? 'kept' : 'off',
      restoreCommand: restoreCommandLine,
      written: [
        'backup_label',
        ...(map ? ['tablespace_map'] : []),
        values.standby ? 'standby.signal' : 'recovery.signal',
      ],
    };
    ctx.out.result(result, [
      ...table([
        ['backupId', backupId],
        ['pgdata', pgdata],
        ['consistent at', manifest.stopLsn],
        [
          'target',
          target ? `${target.kind}${target.value ? ` ${target.value}` : ''}` : 'end of the archived WAL',
        ],
        ['archiving', result.archiving],
        ['restore_command', restoreCommandLine],
      ]),
      `ready: start the server on ${pgdata} (pg_ctl -D ${pgdata} start)`,
    ]);
    return 0;
  } finally {
    repository.close();
  }
}
