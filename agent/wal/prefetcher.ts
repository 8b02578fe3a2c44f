/**
 * Prefetch for `wal-fetch --prefetch N`: while PostgreSQL replays one
 * segment, a resident helper downloads, decompresses and verifies the next N
 * into a spool directory, so the following restore_command only moves a file.
 *
 * The restore_command writes the name it was asked for to `want`; the helper
 * keeps the N segments after it in the spool and drops the rest. Objects in
 * the repository never change, so a spooled file is always the right content.
 * The shell part of the restore_command (shell-lines.ts) moves spooled
 * segments into place without starting pgsnap; the helper learns that
 * recovery moved on by seeing them go.
 *
 * For a file it finds not to be in the repository — the segment after the end
 * of the archive, the history files PostgreSQL probes for when it picks a new
 * timeline — it leaves `<file>.missing`, rechecked every second and removed
 * when the file appears or the helper exits, so that the shell can answer
 * "not there" without starting pgsnap either.
 */
import { copyFileSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { messageOf } from '#domain/errors';
import type { ClusterPin } from '#domain/repository/cluster-pin';
import type { Repository } from '#domain/repository/repository';
import { nextSegmentName, walFileKind } from '#domain/wal/file';
import * as z from '#domain/zod';
import { repositoryChoiceSchema } from '../host/background-config.ts';
import { open, type RepositoryChoice } from '../host/repository.ts';
import { daemonLog, postmasterAlive, prefetcherLockName, releasePidLock, takePidLock } from './daemon.ts';
import { placeFile } from './place-file.ts';
import { missingMarkerName } from './shell-lines.ts';

/** PrefetcherConfig as the prefetcher reads it from its argv. */
export const prefetcherConfigSchema = z.strictObject({
  spool: z.string(),
  repository: repositoryChoiceSchema,
  ahead: z.number(),
  idleExitMs: z.number(),
  first: z.optional(z.string()),
  pgdata: z.optional(z.string()),
}) satisfies z.ZodMiniType<PrefetcherConfig>;

export interface PrefetcherConfig {
  spool: string;
  repository: RepositoryChoice;
  /** How many segments to keep ready ahead of the one PostgreSQL asked for. */
  ahead: number;
  /** The helper exits after this long without a request, and empties the spool. */
  idleExitMs: number;
  /** The first segment recovery will ask for, when the helper starts before it asked for one. */
  first?: string;
  /** The data directory being recovered: the helper stops when its server does. */
  pgdata?: string;
}

const wantFile = 'want';
const noop = () => {};
/**
 * A file not yet in the repository is asked for again after this long (the
 * archive may still grow): the age of a `.missing` marker stays below about
 * this.
 */
const missingRetryMs = 1_000;

function writeMarker(spool: string, name: string): void {
  writeFileSync(join(spool, missingMarkerName(name)), '', { mode: 0o600 });
}

function removeMarker(spool: string, name: string): void {
  rmSync(join(spool, missingMarkerName(name)), { force: true });
}

/** The history files PostgreSQL asks for around a timeline: its own (at promotion) and the next one's. */
function historyProbes(segment: string): string[] {
  const timeline = Number.parseInt(segment.slice(0, 8), 16);
  const hex = (tli: number) => tli.toString(16).toUpperCase().padStart(8, '0');
  return [`${hex(timeline)}.history`, `${hex(timeline + 1)}.history`];
}

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

/** The detached helper: `pgsnap __wal-prefetcher CONFIG`. */
export async function runPrefetcher(config: PrefetcherConfig): Promise<number> {
  if (!takePrefetcherLock(config.spool)) return 0;
  await prefetch(config, await open(config.repository));
  return 0;
}

/** Makes this process the spool's prefetcher; false when a live one is there. */
export function takePrefetcherLock(spool: string): boolean {
  return takePidLock(join(spool, prefetcherLockName));
}

/**
 * Keeps the segments after the wanted one in the spool until recovery stops
 * asking, the server is gone or a signal comes, then empties the spool,
 * releases the lock (taken with takePrefetcherLock) and closes `repository`.
 * PostgreSQL signals the process group of its startup process at shutdown
 * (SIGTERM, SIGINT, SIGQUIT), which a prefetcher that a restore_command
 * became (wal-fetch --stay) is part of: each ends the loop.
 */
export async function prefetch(
  config: PrefetcherConfig,
  repository: Repository,
  /**
   * The pin, read or being read by the restore_command this process is: not
   * read a second time. Given as read, the first round runs before prefetch
   * returns: the next segment is marked `.fetching` by then.
   */
  known?: ClusterPin | Promise<ClusterPin>,
  /**
   * The first file's fetch, when the next segment is fetched alongside it:
   * rounds after the first wait for it, so that the rest of the window does
   * not share the CPU with the file PostgreSQL is waiting for.
   */
  holdUntil?: Promise<unknown>,
): Promise<void> {
  const lock = join(config.spool, prefetcherLockName);
  let pin = known instanceof Promise ? undefined : known;
  const inFlight = new Set<string>();
  const missingUntil = new Map<string, number>();
  const refetched = new Set<string>();
  // Four at once, whatever the number of CPUs: a fetch also waits for the repository, and with two CPUs four
  // in flight placed a segment every 47 ms where two placed one every 73 (bench/wal-restore, local S3).
  const parallel = Math.min(config.ahead, 4);
  /**
   * The first round, which runs before prefetch returns when the pin is
   * handed over as read, starts one fetch and nothing else: the next segment,
   * the one PostgreSQL asks for first, while wal-fetch --stay is still
   * fetching the first file. (From the local S3 server, the round took 5.3 ms
   * so, and 9.4 ms starting four fetches and the history probes.)
   */
  let round = 0;
  let lastWant: string | undefined;
  /** The newest segment recovery took from the spool. */
  let lastTaken: string | undefined;
  /** Segments in the spool that this helper has not removed itself: when one goes, recovery took it. */
  const placed = new Set<string>();
  let fetched = 0;
  let lastRequestAt = Date.now();
  let checkedServerAt = Date.now();
  let stopping = false;
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const) {
    process.on(signal, () => {
      stopping = true;
    });
  }

  /** A second copy of a spooled segment, for the restore_command to copy rather than take. */
  const keepAgain = (name: string) => {
    const temporary = join(config.spool, `.${name}.again.tmp`);
    try {
      copyFileSync(join(config.spool, name), temporary);
      renameSync(temporary, join(config.spool, `${name}.again`));
    } catch {
      rmSync(temporary, { force: true }); // taken meanwhile: fetched again on the next round
    }
  };

  const fetch = async (pinned: ClusterPin, name: string, as = name) => {
    // Tells a restore_command that started pgsnap to wait for this fetch rather than do it again.
    const fetching = join(config.spool, `${name}.fetching`);
    writeFileSync(fetching, '', { mode: 0o600 });
    try {
      const content = await repository.fetchWal(pinned, name);
      if (!content) {
        missingUntil.set(name, Date.now() + missingRetryMs);
        writeMarker(config.spool, name);
        return;
      }
      placeFile(join(config.spool, `.${as}.tmp`), join(config.spool, as), content);
      removeMarker(config.spool, name);
      missingUntil.delete(name);
      if (as === name) placed.add(name);
      fetched += 1;
    } catch (error) {
      // The restore_command fetches it itself and reports the problem where PostgreSQL logs it.
      removeMarker(config.spool, name);
      missingUntil.set(name, Date.now() + missingRetryMs);
      daemonLog(`${name}: ${messageOf(error)}`);
    } finally {
      rmSync(fetching, { force: true });
      inFlight.delete(name);
    }
  };

  let probedAt = 0;
  let probesAnsweredAt = 0;
  const probeHistory = async (names: string[]) => {
    for (const name of names) {
      try {
        if (pin && !(await repository.hasWal(pin, name))) writeMarker(config.spool, name);
        else removeMarker(config.spool, name);
      } catch (error) {
        removeMarker(config.spool, name);
        daemonLog(`${name}: ${messageOf(error)}`);
      }
    }
    probesAnsweredAt = Date.now();
  };
  let probing: Promise<void> | undefined;

  try {
    while (!stopping) {
      const listing = new Set(readdirSync(config.spool));
      let taken: string | undefined;
      for (const name of placed) {
        if (listing.has(name)) continue;
        placed.delete(name);
        if (taken === undefined || name > taken) taken = name;
      }
      // Segments the restore_command that started this helper spooled count as placed too.
      for (const file of listing) if (walFileKind(file) === 'segment') placed.add(file);
      if (taken !== undefined && (lastTaken === undefined || taken > lastTaken)) lastTaken = taken;
      // Recovery only moves forward: the furthest of what was asked for and what was taken (a restore_command
      // that moves spooled files itself, without starting pgsnap, tells only by taking them).
      const want = [readWant(config.spool), taken, lastWant]
        .filter((name): name is string => name !== undefined)
        .sort()
        .at(-1);
      const now = Date.now();
      if (config.pgdata && now - checkedServerAt > 500) {
        checkedServerAt = now;
        if (!postmasterAlive(config.pgdata)) break;
      }
      if (want !== lastWant) {
        lastWant = want;
        lastRequestAt = now;
      } else if (now - lastRequestAt > config.idleExitMs) {
        break;
      }
      const base = want ?? config.first;
      if (base && pin === undefined) {
        // Read once, before the first fetch. When it fails, this helper stops and frees the spool: the
        // restore_command reports the failure to PostgreSQL, and the next wal-fetch starts a prefetcher again.
        try {
          pin = await (known ?? repository.requirePin());
        } catch (error) {
          daemonLog(`cannot read the cluster pin, prefetch stops: ${messageOf(error)}`);
          break;
        }
      }
      if (base && pin) {
        const window: string[] = [];
        // Before recovery asked for a segment, the window starts at the first one it will ask for.
        for (let step = want ? 1 : 0; window.length < config.ahead; step++) {
          window.push(nextSegmentName(base, pin.walSegmentSize, step));
        }
        const probes = historyProbes(base);
        if (!probing && round > 0 && now - probedAt >= missingRetryMs) {
          probedAt = now;
          probing = probeHistory(probes).finally(() => {
            probing = undefined;
          });
        }
        // At the end of the archive, PostgreSQL asks once more for the last segment it replayed (to start
        // the new timeline from it), right after taking it: keep a second copy, `<segment>.again`, which
        // the restore_command copies instead of moving.
        const last = [...(lastTaken ? [lastTaken] : []), ...window].find((name) =>
          missingUntil.has(nextSegmentName(name, pin!.walSegmentSize)),
        );
        if (last && !listing.has(`${last}.again`) && !inFlight.has(last)) {
          if (listing.has(last)) keepAgain(last);
          else if (last === lastTaken && !refetched.has(last)) {
            refetched.add(last);
            inFlight.add(last);
            void fetch(pin, last, `${last}.again`);
          }
        }
        for (const file of listing) {
          if (file.endsWith('.again') && file !== `${last}.again`)
            rmSync(join(config.spool, file), { force: true });
        }
        const inWindow = new Set(window);
        const spooled = new Set<string>();
        for (const file of listing) {
          if (file.endsWith('.missing')) {
            const name = file.slice(0, -'.missing'.length);
            // A marker says "not there" for about a second at most: older, or out of sight, it goes.
            const fresh = probes.includes(name)
              ? now - probesAnsweredAt < 2 * missingRetryMs
              : inWindow.has(name) &&
                (inFlight.has(name) || (missingUntil.get(name) ?? 0) > now - missingRetryMs);
            if (!fresh) rmSync(join(config.spool, file), { force: true });
            continue;
          }
          if (walFileKind(file) !== 'segment') continue;
          if (inWindow.has(file)) spooled.add(file);
          else if (!inFlight.has(file)) {
            placed.delete(file);
            rmSync(join(config.spool, file), { force: true });
          }
        }
        for (const name of window) {
          if (inFlight.size >= (round === 0 ? 1 : parallel)) break;
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
          void fetch(pin, name);
        }
      }
      round += 1;
      if (round === 1 && holdUntil) await holdUntil.then(noop, noop);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    while (inFlight.size > 0 || probing) await new Promise((resolve) => setTimeout(resolve, 10));
  } finally {
    // Markers first: while the pid file is there, the shell trusts them.
    for (const file of readdirSync(config.spool)) {
      if (file.endsWith('.missing')) rmSync(join(config.spool, file), { force: true });
    }
    for (const file of readdirSync(config.spool)) {
      if (walFileKind(file) === 'segment' || /\.(tmp|fetching|again)$/.test(file))
        rmSync(join(config.spool, file), { force: true });
    }
    releasePidLock(lock);
    repository.close();
    daemonLog(`prefetcher stopped after ${fetched} segments prefetched`);
  }
}
