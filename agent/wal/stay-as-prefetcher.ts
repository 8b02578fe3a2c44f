/** `wal-fetch --stay`: the first restore_command of a recovery, which fetches its file and stays as the prefetcher. */
import { dirname, join } from 'node:path';
import { messageOf } from '#domain/errors';
import type { WalFileKind } from '#domain/wal/file';
import { open } from '../host/repository.ts';
import { daemonLog, logTo, prefetcherLockName, releasePidLock } from './daemon.ts';
import { placeFile } from './place-file.ts';
import { type PrefetcherConfig, prefetch, takePrefetcherLock, writeWant } from './prefetcher.ts';
import { reportToShell } from './shell-lines.ts';

/**
 * `--stay`, the first call of the shell fast path (shell-lines.ts): fetch
 * the file, tell the shell on descriptor 3 (`fetched`, `missing`, `failed`,
 * or `busy` when another prefetcher holds the spool) and close it, which lets
 * the shell answer PostgreSQL at once, and go on as this restore's
 * prefetcher. One Node.js start and one repository connection serve the whole
 * recovery, where a detached helper would start a second of each beside the
 * first call, on the same cores, at the moment PostgreSQL waits. On `failed`
 * the shell runs wal-fetch again in the foreground (--report), which reports
 * the error the way PostgreSQL needs it.
 */
export async function stayAsPrefetcher(
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
