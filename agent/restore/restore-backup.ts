/**
 * Restoring a backup into a data directory restored from its snapshot: the
 * directory checked to hold that snapshot (snapshot-check.ts), the backup's artifacts read
 * from the repository, the restore_command chosen, and the directory
 * prepared (prepare.ts) for PostgreSQL to recover.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { PreconditionError } from '#domain/errors';
import type { Manifest } from '#domain/repository/manifest';
import type { Repository } from '#domain/repository/repository';
import { parseLsn } from '#domain/wal/lsn';
import type { RepositoryChoice } from '../host/repository.ts';
import { selfCommand } from '../host/self.ts';
import { pgVersionOf } from '../postgres/pgdata.ts';
import {
  commandLimitBefore16,
  defaultPrefetchSpool,
  expandedLength,
  walFetchLine,
} from '../wal/shell-lines.ts';
import { prepareDataDirectory, type RecoveryTarget } from './prepare.ts';
import { requireServerCanRun } from './server-can-run.ts';
import { requireBackupSnapshot } from './snapshot-check.ts';

export interface RestoreRequest {
  backupId: string;
  pgdata: string;
  target?: RecoveryTarget;
  /** The target as the operator gave it (`--target-time …`), for messages. */
  targetFlag?: string;
  targetAction?: 'promote' | 'pause' | 'shutdown';
  /** New locations for tablespaces, by OID. */
  tablespaces?: Record<string, string>;
  keepArchiving: boolean;
  walDir?: string;
  standby?: { primaryConninfo: string };
  /** Segments the restore_command keeps fetched ahead (0: none), and where they wait. */
  prefetch: { ahead: number; spoolDir?: string };
}

export interface RestoreResult {
  backupId: string;
  pgdata: string;
  systemIdentifier: string;
  stopLsn: string | undefined;
  target: RecoveryTarget | { kind: 'end of WAL' };
  mode: 'standby' | 'recovery';
  archiving: 'kept' | 'off';
  restoreCommand: string;
  written: string[];
}

/** Prepares `request.pgdata` to recover backup `request.backupId` of `choice`'s repository. */
export async function restoreBackup(
  repository: Repository,
  choice: RepositoryChoice,
  request: RestoreRequest,
): Promise<RestoreResult> {
  const { backupId, pgdata } = request;
  const manifest = await completedManifest(repository, backupId);
  if (request.target) checkTargetAfterConsistency(request.target, request.targetFlag, manifest);
  requireBackupSnapshot(pgdata, manifest);
  const label = await readArtifact(repository, manifest, 'backup_label');
  if (!label)
    throw new PreconditionError(
      `backup ${backupId} has no backup_label in its manifest; it cannot be restored`,
    );
  const map = await readArtifact(repository, manifest, 'tablespace_map');
  const restoreCommand = restoreCommandFor(choice, pgdata, request.prefetch);
  // The server on PGDATA runs as its owner; whoever runs this restore (often root) may reach more.
  requireServerCanRun(selfCommand(), statSync(pgdata).uid, 'restore_command');
  prepareDataDirectory({
    pgdata,
    backupLabel: label.text,
    expectedSha256: {
      backupLabel: label.sha256,
      ...(map ? { tablespaceMap: map.sha256 } : {}),
    },
    ...(map ? { tablespaceMap: map.text } : {}),
    ...(request.tablespaces ? { tablespaces: request.tablespaces } : {}),
    restoreCommand,
    ...(request.target ? { target: request.target, targetAction: request.targetAction ?? 'promote' } : {}),
    keepArchiving: request.keepArchiving,
    ...(request.walDir ? { walDir: request.walDir } : {}),
    ...(request.standby ? { standby: request.standby } : {}),
  });
  return {
    backupId,
    pgdata,
    systemIdentifier: manifest.systemIdentifier,
    stopLsn: manifest.stopLsn,
    target: request.target ?? { kind: 'end of WAL' },
    mode: request.standby ? 'standby' : 'recovery',
    archiving: request.keepArchiving ? 'kept' : 'off',
    restoreCommand,
    written: [
      'backup_label',
      ...(map ? ['tablespace_map'] : []),
      request.standby ? 'standby.signal' : 'recovery.signal',
    ],
  };
}

async function completedManifest(repository: Repository, backupId: string): Promise<Manifest> {
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
  return manifest;
}

/**
 * A target before the backup's consistency point would stop recovery before
 * the restored files are consistent.
 */
function checkTargetAfterConsistency(
  target: RecoveryTarget,
  given: string | undefined,
  manifest: Manifest,
): void {
  const flag = given ?? `--target-${target.kind} ${target.value}`;
  const stop = `the backup's consistency point (${manifest.stopLsn} at ${manifest.timings.stoppedAt})`;
  if (target.kind === 'lsn' && manifest.stopLsn && parseLsn(target.value!) < parseLsn(manifest.stopLsn)) {
    throw new PreconditionError(
      `${flag} is before ${stop}: PostgreSQL would stop recovery before the ` +
        'restored files are consistent. Choose a later target, or restore an earlier backup.',
    );
  }
  if (
    target.kind === 'time' &&
    manifest.timings.stoppedAt &&
    Date.parse(target.value!) < Date.parse(manifest.timings.stoppedAt)
  ) {
    throw new PreconditionError(
      `${flag} is before ${stop}: PostgreSQL would stop recovery before the ` +
        'restored files are consistent. Choose a later time, or restore an earlier backup.',
    );
  }
}

async function readArtifact(
  repository: Repository,
  manifest: Manifest,
  name: string,
): Promise<{ text: string; sha256: string } | undefined> {
  const record = manifest.artifacts.find((a) => a.name === name);
  if (!record) return undefined;
  const text = (await repository.readArtifact(manifest.backupId, record)).toString('utf8');
  return { text, sha256: record.sha256 };
}

/**
 * The restore_command: pgsnap wal-fetch, or with prefetch the shell fast
 * path; refused when PostgreSQL before 16 would cut it.
 */
function restoreCommandFor(
  choice: RepositoryChoice,
  pgdata: string,
  prefetch: RestoreRequest['prefetch'],
): string {
  const line = walFetchLine(
    choice.url,
    choice.cluster,
    prefetch.ahead > 0
      ? { ahead: prefetch.ahead, spool: resolve(prefetch.spoolDir ?? defaultPrefetchSpool(resolve(pgdata))) }
      : undefined,
  );
  const major = Number(pgVersionOf(pgdata) ?? 16);
  if (major < 16 && expandedLength(line) > commandLimitBefore16) {
    throw new PreconditionError(
      `the restore_command would be ${expandedLength(line)} bytes, and PostgreSQL ${major} ` +
        `cuts it at ${commandLimitBefore16}: give a shorter --spool-dir, or install pgsnap under a shorter path`,
    );
  }
  return line;
}
