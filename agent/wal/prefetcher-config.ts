/**
 * The prefetcher of one restore, as a restore_command sees it: the spool it
 * keeps (beside pg_wal, or in the state directory when the command does not
 * run in the data directory), and the segment it starts from when PostgreSQL
 * asked for a history file first.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { WalFileKind } from '#domain/wal/file';
import { parseBackupLabel } from '#domain/wal/lsn';
import type { RepositoryChoice } from '../host/repository.ts';
import { defaultStateRoot } from '../host/settings.ts';
import { walDirectoryOf } from '../postgres/pgdata.ts';
import { privateDirectory } from './daemon.ts';
import type { PrefetcherConfig } from './prefetcher.ts';
import { defaultPrefetchSpool } from './shell-lines.ts';

/** The prefetcher of this restore: its spool, and where it starts when PostgreSQL asked for a history file. */
export function prefetcherConfig(
  choice: RepositoryChoice,
  ahead: number,
  spoolDir: string | undefined,
  kind: WalFileKind,
): PrefetcherConfig {
  const cwd = process.cwd();
  // Before the first segment (PostgreSQL asks for history files first), start from the backup's.
  const first = kind === 'segment' ? undefined : backupStartSegment(cwd);
  return {
    spool: privateDirectory(spoolDir ? resolve(spoolDir) : prefetchSpool(cwd, choice)),
    repository: choice,
    ahead,
    idleExitMs: 15_000,
    ...(existsSync(join(cwd, 'postmaster.pid')) ? { pgdata: cwd } : {}),
    ...(first ? { first } : {}),
  };
}

function prefetchSpool(cwd: string, choice: RepositoryChoice): string {
  if (existsSync(walDirectoryOf(cwd))) return defaultPrefetchSpool(cwd);
  const key = createHash('sha256')
    .update(`${realpathSync(cwd)}\n${choice.url}\n${choice.cluster}`)
    .digest('hex')
    .slice(0, 16);
  return join(defaultStateRoot(), choice.cluster, `wal-fetch-${key}`);
}

/** The first segment of the backup being restored, from backup_label (backup_label.old once recovery read it). */
function backupStartSegment(pgdata: string): string | undefined {
  for (const file of ['backup_label', 'backup_label.old']) {
    try {
      return parseBackupLabel(readFileSync(join(pgdata, file), 'utf8')).startWalFile;
    } catch {}
  }
  return undefined;
}
