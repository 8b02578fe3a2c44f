/** `pgsnap wal-fetch %f %p`: the restore_command. */
import { createHash } from 'node:crypto';
import {
  closeSync,
  copyFileSync,
  existsSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { messageOf, stopRecoveryExitCode, UsageError } from '#domain/errors';
import type { ClusterPin } from '#domain/repository/cluster-pin';
import type { Repository } from '#domain/repository/repository';
import { nextSegmentName, requireWalFileName, type WalFileKind } from '#domain/wal/file';
import { parse } from '../cli/args.ts';
import { open, type RepositoryChoice, requireRepositoryChoice } from '../cli/repository-options.ts';
import { printUsage } from '../cli/usage.ts';
import { walDirectoryOf } from '../postgres/pgdata.ts';
import { defaultStateRoot } from '../session/state-root.ts';
import {
  daemonLog,
  lockHolder,
  logTo,
  prefetcherLockName,
  privateDirectory,
  releasePidLock,
  spawnDaemon,
} from '../wal/daemon.ts';
import { placeFile } from '../wal/place-file.ts';
import { type PrefetcherConfig, prefetch, takePrefetcherLock, writeWant } from '../wal/prefetcher.ts';
import {
  confQuote,
  defaultPrefetchSpool,
  plainRestoreCommandLine,
  restoreCommandLine,
  warnIfTooLong,
} from '../wal/shell-lines.ts';

export const walFetchUsage = `pgsnap wal-fetch FILE PATH --repo URL --cluster NAME [--prefetch N]
pgsnap wal-fetch --print-command --repo URL --cluster NAME [--prefetch N] [--spool-dir DIR | --pgdata DIR]

The restore_command. Fetches FILE (%f) from the repository, checks its
sha256, and writes it to PATH (%p). In postgresql.conf of a restored server:

  restore_command = 'pgsnap wal-fetch %f %p --repo s3://bucket/pg --cluster orders-db'

--prefetch N     keep the next N segments downloaded and verified ahead of
                 recovery by a helper that exits once recovery stops asking
--spool-dir DIR  the directory where prefetched segments wait, for this
                 restore only (default: pg_wal/pgsnap-prefetch, on the file
                 system of pg_wal, so that taking a segment is a rename)
--stay           (used by that line) report on descriptor 3 once the file is
                 in place, and go on as the prefetcher
--report         (used by that line) say on descriptor 3 \`fetched\` or
                 \`missing\`, so that the line can tell pgsnap's "not there"
                 from Node.js failing to start
--print-command  print the restore_command line for postgresql.conf, every
                 value shell-quoted; with --prefetch, the shell fast path that
                 moves prefetched segments into place and starts pgsnap only
                 for the others (give --pgdata DIR for the default spool)

When replay is faster than starting pgsnap (tens of milliseconds a segment),
use the line that --print-command --prefetch 8 prints: the shell moves
prefetched segments into place, and pgsnap starts only for the others.

Exit codes: 0 fetched; 1 not in the repository (quietly: PostgreSQL asks for
files that do not exist, such as the next timeline's history file); ${stopRecoveryExitCode} the
repository is unreachable or the file is damaged, which makes PostgreSQL stop
recovery instead of ending it early: fix the cause and start the server again.`;

const flags = {
  prefetch: { type: 'string' },
  'spool-dir': { type: 'string' },
  pgdata: { type: 'string' },
  'print-command': { type: 'boolean', default: false },
  stay: { type: 'boolean', default: false },
  report: { type: 'boolean', default: false },
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
  const ahead = Number(values.prefetch ?? 0);
  if (!Number.isInteger(ahead) || ahead < 0 || ahead > 64) {
    throw new UsageError('--prefetch must be a whole number of segments from 0 to 64');
  }
  if (values['print-command']) {
    if (positionals.length > 0) throw new UsageError('--print-command takes no file');
    const choice = requireRepositoryChoice('wal-fetch', values);
    const line =
      ahead > 0
        ? restoreCommandLine({
            spool: resolve(values['spool-dir'] ?? defaultPrefetchSpool(resolve(values.pgdata ?? '.'))),
            url: choice.url,
            cluster: choice.cluster,
            prefetch: ahead,
          })
        : plainRestoreCommandLine(choice);
    warnIfTooLong(line, 'restore_command');
    process.stdout.write(
      values.json
        ? `${JSON.stringify({ restoreCommand: line })}\n`
        : `restore_command = ${confQuote(line)}\n`,
    );
    return 0;
  }
  if (positionals.length !== 2) {
    throw new UsageError(`give the file and the path, as restore_command = 'pgsnap wal-fetch %f %p ...'`);
  }
  const [name, path] = positionals as [string, string];
  const kind = requireWalFileName(name);
  const choice = requireRepositoryChoice('wal-fetch', values);

  if (values.stay) {
    if (ahead === 0) throw new UsageError('--stay needs --prefetch N');
    return stayAsPrefetcher(name, kind, path, prefetcherConfig(choice, ahead, values['spool-dir'], kind));
  }
  const status = await fetchOne(name, kind, path, choice, ahead, values['spool-dir']);
  // Only after an answer: on a failure the exception leaves without one, and the line stops recovery.
  if (values.report) reportToShell(status === 0 ? 'fetched' : 'missing');
  return status;
}

/** Fetches one file into place, from the spool or the repository: 0 fetched, 1 not in the repository. */
async function fetchOne(
  name: string,
  kind: WalFileKind,
  path: string,
  choice: RepositoryChoice,
  ahead: number,
  spoolDir: string | undefined,
): Promise<0 | 1> {
  /** Where this call also spools the next segments: when it has just started the prefetcher. */
  let aheadSpool: string | undefined;
  if (ahead > 0) {
    const config = prefetcherConfig(choice, ahead, spoolDir, kind);
    const spool = config.spool;
    const running = lockHolder(join(spool, prefetcherLockName)) !== undefined;
    if (kind === 'segment') writeWant(spool, name);
    if (!running) {
      ensurePrefetcher(config);
      aheadSpool = spool;
    }
    if (kind === 'segment') {
      if (takeFromSpool(join(spool, name), path)) return 0;
      // A running prefetcher is most likely fetching it right now: quicker than fetching it again.
      if (running && (await awaitSpooled(spool, name, 5_000)) && takeFromSpool(join(spool, name), path)) {
        return 0;
      }
    }
  }

  const repository = await open(choice);
  try {
    const pinning = repository.requirePin();
    const fetching = repository.fetchWalWhilePinning(pinning, name);
    // The prefetcher just started takes a Node.js start and more before its first segment is ready:
    // fetch the next few alongside this one, so that PostgreSQL does not start pgsnap for them as well.
    // (Never rejected: a failure to read the pin is reported by the fetch above.)
    const alongside =
      aheadSpool && kind === 'segment'
        ? [1, 2].slice(0, ahead).map((step) =>
            pinning.then(
              (pin) =>
                spoolAhead(repository, pin, aheadSpool!, nextSegmentName(name, pin.walSegmentSize, step)),
              () => {},
            ),
          )
        : [];
    const content = await fetching;
    if (content) placeFile(join(dirname(path), `.pgsnap-${process.pid}.tmp`), path, content);
    await Promise.all(alongside);
    return content ? 0 : 1;
  } finally {
    repository.close();
  }
}

/** The prefetcher of this restore: its spool, and where it starts when PostgreSQL asked for a history file. */
function prefetcherConfig(
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

/**
 * `--stay`, the first call of the shell fast path (wal-commands.ts): fetch
 * the file, tell the shell on descriptor 3 (`fetched`, `missing`, `failed`,
 * or `busy` when another prefetcher holds the spool) and close it, which lets
 * the shell answer PostgreSQL at once, and go on as this restore's
 * prefetcher. One Node.js start and one repository connection serve the whole
 * recovery, where a detached helper would start a second of each beside the
 * first call, on the same cores, at the moment PostgreSQL waits. On `failed`
 * the shell runs wal-fetch again in the foreground (--report), which reports
 * the error the way PostgreSQL needs it.
 */
async function stayAsPrefetcher(
  name: string,
  kind: WalFileKind,
  path: string,
  config: PrefetcherConfig,
): Promise<number> {
  if (!takePrefetcherLock(config.spool)) {
    reportToShell('busy');
    return 0;
  }
  logTo(join(config.spool, 'prefetcher.log'));
  let prefetching: Promise<void> | undefined;
  try {
    const repository = await open(config.repository);
    if (kind === 'segment') writeWant(config.spool, name);
    // One read of the pin, for this file and for the loop.
    const pinning = repository.requirePin();
    const placing = repository.fetchWalWhilePinning(pinning, name).then((content) => {
      if (content) placeFile(join(dirname(path), `.pgsnap-${process.pid}.tmp`), path, content);
      return content;
    });
    placing.catch(() => {}); // awaited below
    // The prefetcher starts before the answer: PostgreSQL asks for the next segment some 10 ms after it,
    // and the shell waits for a fetch only if it finds its `.fetching` marker; without one it starts
    // pgsnap, a second Node.js start (620 ms for the second segment in a bench/wal-restore round from S3,
    // against 70 to 100 ms of replay per segment). Handed the pin as read, prefetch marks the next segment
    // before it returns. After a segment, that next one is fetched alongside it (it was ready 73 to 161 ms
    // after the first otherwise, where cp has it 12 ms after); the rest of the window waits for this file,
    // which PostgreSQL is waiting for. Should this file fail, the prefetcher goes on all the same, as after
    // a later file's failure: the shell reports the failure through a wal-fetch in the foreground.
    const startPrefetch = async (holdUntil?: Promise<unknown>) => {
      prefetching = prefetch(config, repository, await pinning, holdUntil).catch((error: unknown) =>
        daemonLog(messageOf(error)),
      );
    };
    if (kind === 'segment') await startPrefetch(placing);
    const content = await placing;
    if (!prefetching) await startPrefetch();
    reportToShell(content ? 'fetched' : 'missing');
  } catch {
    reportToShell('failed');
  }
  if (prefetching) await prefetching;
  else releasePidLock(join(config.spool, prefetcherLockName));
  return 0;
}

/**
 * The answer the fast path line (wal-commands.ts) reads on descriptor 3: it
 * trusts only this, not the exit status, which Node.js also uses when it
 * cannot start at all. Closing the descriptor ends the shell's `$(...)`.
 */
function reportToShell(outcome: 'fetched' | 'missing' | 'failed' | 'busy'): void {
  try {
    writeSync(3, `${outcome}\n`);
    closeSync(3);
  } catch {}
}

/** Fetches a segment into the spool, for the prefetcher to count as its own; quietly nothing on any failure. */
async function spoolAhead(
  repository: Repository,
  pin: ClusterPin,
  spool: string,
  name: string,
): Promise<void> {
  try {
    const content = await repository.fetchWal(pin, name);
    if (content) placeFile(join(spool, `.${name}.${process.pid}.tmp`), join(spool, name), content);
  } catch {}
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
      const match = /^START WAL LOCATION: .*\(file ([0-9A-F]{24})\)$/m.exec(
        readFileSync(join(pgdata, file), 'utf8'),
      );
      if (match) return match[1];
    } catch {}
  }
  return undefined;
}

/** Waits while the prefetcher is fetching `name`; true when it is then in the spool. */
async function awaitSpooled(spool: string, name: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (existsSync(join(spool, `${name}.fetching`)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 5));
  }
  return existsSync(join(spool, name));
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
