/**
 * Prefetch for `wal-fetch --prefetch N`: while PostgreSQL replays one
 * segment, a resident helper downloads, decompresses and verifies the next N
 * into a spool directory, so the following restore_command only moves a file.
 *
 * The restore_command writes the name it was asked for to `want`; the helper
 * keeps the N segments after it in the spool and drops the rest. Objects in
 * the repository never change, so a spooled file is always the right content.
 */
import { readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { messageOf } from '#domain/errors';
import type { ClusterPin } from '#domain/repository/cluster-pin';
import { nextSegmentName, walFileKind } from '#domain/wal-file';
import { daemonLog, prefetcherLockName, releasePidLock, takePidLock } from './daemon.ts';
import { open, type RepositoryChoice } from './repository-options.ts';

export interface PrefetcherConfig {
  spool: string;
  repository: RepositoryChoice;
  /** How many segments to keep ready ahead of the one PostgreSQL asked for. */
  ahead: number;
  /** The helper exits after this long without a request, and empties the spool. */
  idleExitMs: number;
}

const wantFile = 'want';
/** A segment not yet in the repository is asked for again after this long (the archive may still grow). */
const missingRetryMs = 1_000;

export function readWant(spool: string): string | undefined {
  try {
    const name = readFileSync(join(spool, wantFile), 'utf8').trim();
    return walFileKind(name) === 'segment' ? name : undefined;
  } catch {
    return undefined;
  }
}

export function writeWant(spool: string, name: string): void {
  const temporary = join(spool, `.${wantFile}.${process.pid}`);
  writeFileSync(temporary, `${name}\n`, { mode: 0o600 });
  renameSync(temporary, join(spool, wantFile));
}

export async function runPrefetcher(config: PrefetcherConfig): Promise<number> {
  const lock = join(config.spool, prefetcherLockName);
  if (!takePidLock(lock)) return 0;
  const repository = await open(config.repository);
  let pin: ClusterPin | undefined;
  const inFlight = new Set<string>();
  const missingUntil = new Map<string, number>();
  const parallel = Math.min(config.ahead, 4);
  let lastWant: string | undefined;
  /** Segments this helper put in the spool and has not removed itself: when one goes, recovery took it. */
  const placed = new Set<string>();
  let fetched = 0;
  let lastRequestAt = Date.now();
  let stopping = false;
  process.on('SIGTERM', () => {
    stopping = true;
  });

  const fetch = async (name: string) => {
    try {
      pin ??= await repository.requirePin();
      const content = await repository.fetchWal(pin, name);
      if (!content) {
        missingUntil.set(name, Date.now() + missingRetryMs);
        return;
      }
      const temporary = join(config.spool, `.${name}.tmp`);
      writeFileSync(temporary, content, { mode: 0o600 });
      renameSync(temporary, join(config.spool, name));
      placed.add(name);
      fetched += 1;
    } catch (error) {
      // The restore_command fetches it itself and reports the problem where PostgreSQL logs it.
      missingUntil.set(name, Date.now() + missingRetryMs);
      daemonLog(`${name}: ${messageOf(error)}`);
    } finally {
      inFlight.delete(name);
    }
  };

  try {
    while (!stopping) {
      const listing = new Set(readdirSync(config.spool));
      let taken: string | undefined;
      for (const name of placed) {
        if (listing.has(name)) continue;
        placed.delete(name);
        if (taken === undefined || name > taken) taken = name;
      }
      // Recovery only moves forward: the furthest of what was asked for and what was taken (a restore_command
      // that moves spooled files itself, without starting pgsnap, tells only by taking them).
      const want = [readWant(config.spool), taken, lastWant]
        .filter((name): name is string => name !== undefined)
        .sort()
        .at(-1);
      const now = Date.now();
      if (want !== lastWant) {
        lastWant = want;
        lastRequestAt = now;
      } else if (now - lastRequestAt > config.idleExitMs) {
        break;
      }
      if (want && pin === undefined && inFlight.size === 0) {
        try {
          pin = await repository.requirePin();
        } catch (error) {
          daemonLog(messageOf(error));
          break;
        }
      }
      if (want && pin) {
        const window: string[] = [];
        for (let step = 1; step <= config.ahead; step++) {
          window.push(nextSegmentName(want, pin.walSegmentSize, step));
        }
        const inWindow = new Set(window);
        const spooled = new Set<string>();
        for (const file of listing) {
          if (walFileKind(file) !== 'segment') continue;
          if (inWindow.has(file)) spooled.add(file);
          else if (!inFlight.has(file)) {
            placed.delete(file);
            rmSync(join(config.spool, file), { force: true });
          }
        }
        for (const name of window) {
          if (inFlight.size >= parallel) break;
          if (spooled.has(name) || inFlight.has(name) || (missingUntil.get(name) ?? 0) > now) continue;
          // Past the end of the archive there is nothing further to fetch yet.
          if (
            [...missingUntil.keys()].some(
              (missing) => missing < name && (missingUntil.get(missing) ?? 0) > now,
            )
          ) {
            break;
          }
          inFlight.add(name);
          void fetch(name);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    while (inFlight.size > 0) await new Promise((resolve) => setTimeout(resolve, 10));
  } finally {
    for (const file of readdirSync(config.spool)) {
      if (walFileKind(file) === 'segment' || file.endsWith('.tmp'))
        rmSync(join(config.spool, file), { force: true });
    }
    releasePidLock(lock);
    repository.close();
    daemonLog(`prefetcher stopped after ${fetched} segments prefetched`);
  }
  return 0;
}
