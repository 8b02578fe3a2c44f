/**
 * Fetching one WAL file for the restore_command (`wal-fetch %f %p`): from the
 * prefetcher's spool when it is there, else from the repository; with
 * prefetch, the prefetcher is started when none runs, and the next segments
 * are fetched alongside until it is ready.
 */
import { copyFileSync, existsSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { ClusterPin } from '#domain/repository/cluster-pin';
import type { Repository } from '#domain/repository/repository';
import { nextSegmentName, type WalFileKind } from '#domain/wal/file';
import { open, type RepositoryChoice } from '../host/repository.ts';
import { lockHolder, prefetcherLockName, spawnDaemon } from './daemon.ts';
import { placeFile } from './place-file.ts';
import { type PrefetcherConfig, writeWant } from './prefetcher.ts';
import { prefetcherConfig } from './prefetcher-config.ts';

/** Fetches one file into place, from the spool or the repository: 0 fetched, 1 not in the repository. */
export async function fetchWalFile(
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
