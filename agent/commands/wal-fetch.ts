/** `pgsnap wal-fetch %f %p`: the restore_command. */
import { createHash } from 'node:crypto';
import { copyFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { messageOf, UsageError } from '#domain/errors';
import { requireWalFileName } from '#domain/wal-file';
import { parse } from '../cli-args.ts';
import { lockHolder, prefetcherLockName, privateDirectory, spawnDaemon } from '../daemon.ts';
import { open, type RepositoryChoice, requireRepositoryChoice } from '../repository-options.ts';
import { defaultStateRoot } from '../state-root.ts';
import { printUsage } from '../usage.ts';
import { type PrefetcherConfig, writeWant } from '../wal-prefetcher.ts';

/**
 * PostgreSQL takes any exit status up to 125 from restore_command as "no such
 * file" and goes on: past the consistency point it ends recovery there and
 * promotes, silently dropping the rest of the WAL. Above 125 it stops recovery
 * with FATAL (RestoreArchivedFile: wait_result_is_any_signal(rc, true)), which
 * is what a damaged or unreachable repository calls for.
 */
export const stopRecoveryExitCode = 128;

export const walFetchUsage = `pgsnap wal-fetch FILE PATH --repo URL --cluster NAME [--prefetch N]

The restore_command. Fetches FILE (%f) from the repository, checks its
sha256, and writes it to PATH (%p). In postgresql.conf of a restored server:

  restore_command = 'pgsnap wal-fetch %f %p --repo s3://bucket/pg --cluster orders-db'

--prefetch N     keep the next N segments downloaded and verified ahead of
                 recovery by a helper that exits once recovery stops asking
--spool-dir DIR  the directory where prefetched segments wait, for this
                 restore only (default: one under the state directory); on the
                 file system of pg_wal they are moved, not copied

When replay is faster than starting pgsnap (tens of milliseconds per segment),
let the shell take prefetched segments and start pgsnap only for the others:

  restore_command = 'test -f /var/tmp/pgsnap-prefetch/%f && mv /var/tmp/pgsnap-prefetch/%f %p ||
    pgsnap wal-fetch %f %p --prefetch 8 --spool-dir /var/tmp/pgsnap-prefetch --repo ... --cluster ...'

(one line; the helper notices what the shell took and keeps fetching ahead).

Exit codes: 0 fetched; 1 not in the repository (quietly: PostgreSQL asks for
files that do not exist, such as the next timeline's history file); ${stopRecoveryExitCode} the
repository is unreachable or the file is damaged, which makes PostgreSQL stop
recovery instead of ending it early: fix the cause and start the server again.`;

const flags = {
  prefetch: { type: 'string' },
  'spool-dir': { type: 'string' },
} as const;

export async function walFetchCommand(args: string[]): Promise<number> {
  try {
    return await walFetch(args);
  } catch (error) {
    process.stderr.write(`pgsnap wal-fetch: ${messageOf(error)}\n`);
    return stopRecoveryExitCode;
  }
}

async function walFetch(args: string[]): Promise<number> {
  const { values, positionals } = parse('wal-fetch', args, flags, true);
  if (values.help) return printUsage(walFetchUsage);
  if (positionals.length !== 2) {
    throw new UsageError(`give the file and the path, as restore_command = 'pgsnap wal-fetch %f %p ...'`);
  }
  const [name, path] = positionals as [string, string];
  const kind = requireWalFileName(name);
  const choice = requireRepositoryChoice('wal-fetch', values);
  const ahead = Number(values.prefetch ?? 0);
  if (!Number.isInteger(ahead) || ahead < 0 || ahead > 64) {
    throw new UsageError('--prefetch must be a whole number of segments from 0 to 64');
  }

  if (ahead > 0 && kind === 'segment') {
    const spool = values['spool-dir']
      ? privateDirectory(resolve(values['spool-dir']))
      : fetchSpool(defaultStateRoot(), choice);
    writeWant(spool, name);
    ensurePrefetcher({ spool, repository: choice, ahead, idleExitMs: 15_000 });
    if (takeFromSpool(join(spool, name), path)) return 0;
  }

  const repository = await open(choice);
  try {
    const pin = await repository.requirePin();
    const content = await repository.fetchWal(pin, name);
    if (!content) return 1;
    const temporary = join(dirname(path), `.pgsnap-${process.pid}.tmp`);
    writeFileSync(temporary, content, { mode: 0o600 });
    renameSync(temporary, path);
    return 0;
  } finally {
    repository.close();
  }
}

/** By default per data directory and repository: two restores on one host never share prefetched files. */
function fetchSpool(spoolRoot: string, choice: RepositoryChoice): string {
  const key = createHash('sha256')
    .update(`${realpathSync(process.cwd())}\n${choice.url}\n${choice.cluster}`)
    .digest('hex')
    .slice(0, 16);
  return privateDirectory(join(spoolRoot, choice.cluster, `wal-fetch-${key}`));
}

function ensurePrefetcher(config: PrefetcherConfig): void {
  if (lockHolder(join(config.spool, prefetcherLockName)) !== undefined) return;
  spawnDaemon('__wal-prefetcher', config, { cwd: config.spool, log: join(config.spool, 'prefetcher.log') });
}

/** Moves a prefetched segment into place; false when it is not (or no longer) there. */
function takeFromSpool(spooled: string, path: string): boolean {
  try {
    renameSync(spooled, path);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return false;
    if (code !== 'EXDEV') throw error;
  }
  // Another file system: copy beside the target, then rename, so PostgreSQL never sees a partial file.
  const temporary = join(dirname(resolve(path)), `.pgsnap-${process.pid}.tmp`);
  try {
    copyFileSync(spooled, temporary);
  } catch (error) {
    rmSync(temporary, { force: true });
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  renameSync(temporary, path);
  rmSync(spooled, { force: true });
  return true;
}
