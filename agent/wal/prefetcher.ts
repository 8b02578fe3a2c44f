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
  await new Prefetch(config, repository, known).run(holdUntil);
}

/** One prefetcher's rounds, every 10 ms: each a few named steps over the spool's listing. */
class Prefetch {
  private pin: ClusterPin | undefined;
  private readonly inFlight = new Set<string>();
  private readonly missingUntil = new Map<string, number>();
  private readonly refetched = new Set<string>();
  // Four at once, whatever the number of CPUs: a fetch also waits for the repository, and with two CPUs four
  // in flight placed a segment every 47 ms where two placed one every 73 (bench/wal-restore, local S3).
  private readonly parallel: number;
  /**
   * The first round, which runs before prefetch returns when the pin is
   * handed over as read, starts one fetch and nothing else: the next segment,
   * the one PostgreSQL asks for first, while wal-fetch --stay is still
   * fetching the first file. (From the local S3 server, the round took 5.3 ms
   * so, and 9.4 ms starting four fetches and the history probes.)
   */
  private round = 0;
  private lastWant: string | undefined;
  /** The newest segment recovery took from the spool. */
  private lastTaken: string | undefined;
  /** Segments in the spool that this helper has not removed itself: when one goes, recovery took it. */
  private readonly placed = new Set<string>();
  private fetched = 0;
  private lastRequestAt = Date.now();
  private checkedServerAt = Date.now();
  private stopping = false;
  private probedAt = 0;
  private probesAnsweredAt = 0;
  private probing: Promise<void> | undefined;

  constructor(
    private readonly config: PrefetcherConfig,
    private readonly repository: Repository,
    private readonly known: ClusterPin | Promise<ClusterPin> | undefined,
  ) {
    this.pin = known instanceof Promise ? undefined : known;
    this.parallel = Math.min(config.ahead, 4);
  }

  async run(holdUntil: Promise<unknown> | undefined): Promise<void> {
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const) {
      process.on(signal, () => {
        this.stopping = true;
      });
    }
    try {
      while (!this.stopping) {
        if (!(await this.oneRound())) break;
        this.round += 1;
        if (this.round === 1 && holdUntil) await holdUntil.then(noop, noop);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      while (this.inFlight.size > 0 || this.probing) await new Promise((resolve) => setTimeout(resolve, 10));
    } finally {
      this.empty();
    }
  }

  /** One look at the spool and what follows from it; false when the prefetcher is to stop. */
  private async oneRound(): Promise<boolean> {
    const listing = new Set(readdirSync(this.config.spool));
    const want = this.followRecovery(listing);
    const now = Date.now();
    if (this.serverGone(now) || this.idle(want, now)) return false;
    const base = want ?? this.config.first;
    if (!base) return true;
    const pin = this.pin ?? (await this.readPin());
    if (!pin) return false;
    const window: string[] = [];
    // Before recovery asked for a segment, the window starts at the first one it will ask for.
    for (let step = want ? 1 : 0; window.length < this.config.ahead; step++) {
      window.push(nextSegmentName(base, pin.walSegmentSize, step));
    }
    const probes = historyProbes(base);
    this.probeHistoryNow(probes, now);
    this.keepLastAgain(listing, window, pin);
    const spooled = this.tidy(listing, new Set(window), probes, now);
    this.startFetches(window, spooled, pin, now);
    return true;
  }

  /**
   * Which segment recovery wants: the furthest of what was asked for and what
   * was taken (a restore_command that moves spooled files itself, without
   * starting pgsnap, tells only by taking them); recovery only moves forward.
   */
  private followRecovery(listing: Set<string>): string | undefined {
    let taken: string | undefined;
    for (const name of this.placed) {
      if (listing.has(name)) continue;
      this.placed.delete(name);
      if (taken === undefined || name > taken) taken = name;
    }
    // Segments the restore_command that started this helper spooled count as placed too.
    for (const file of listing) if (walFileKind(file) === 'segment') this.placed.add(file);
    if (taken !== undefined && (this.lastTaken === undefined || taken > this.lastTaken))
      this.lastTaken = taken;
    return [readWant(this.config.spool), taken, this.lastWant]
      .filter((name): name is string => name !== undefined)
      .sort()
      .at(-1);
  }

  /** Whether the server being recovered has stopped (looked at every half second). */
  private serverGone(now: number): boolean {
    if (!this.config.pgdata || now - this.checkedServerAt <= 500) return false;
    this.checkedServerAt = now;
    return !postmasterAlive(this.config.pgdata);
  }

  /** Whether recovery has asked for nothing new for idleExitMs. */
  private idle(want: string | undefined, now: number): boolean {
    if (want !== this.lastWant) {
      this.lastWant = want;
      this.lastRequestAt = now;
      return false;
    }
    return now - this.lastRequestAt > this.config.idleExitMs;
  }

  /**
   * Read once, before the first fetch. When it fails, this helper stops and
   * frees the spool: the restore_command reports the failure to PostgreSQL,
   * and the next wal-fetch starts a prefetcher again.
   */
  private async readPin(): Promise<ClusterPin | undefined> {
    try {
      this.pin = await (this.known ?? this.repository.requirePin());
      return this.pin;
    } catch (error) {
      daemonLog(`cannot read the cluster pin, prefetch stops: ${messageOf(error)}`);
      return undefined;
    }
  }

  /** The history files around the timeline, asked about once a second (not in the first round). */
  private probeHistoryNow(probes: string[], now: number): void {
    if (this.probing || this.round === 0 || now - this.probedAt < missingRetryMs) return;
    this.probedAt = now;
    this.probing = this.probeHistory(probes).finally(() => {
      this.probing = undefined;
    });
  }

  private async probeHistory(names: string[]): Promise<void> {
    for (const name of names) {
      try {
        if (this.pin && !(await this.repository.hasWal(this.pin, name))) writeMarker(this.config.spool, name);
        else removeMarker(this.config.spool, name);
      } catch (error) {
        removeMarker(this.config.spool, name);
        daemonLog(`${name}: ${messageOf(error)}`);
      }
    }
    this.probesAnsweredAt = Date.now();
  }

  /**
   * At the end of the archive, PostgreSQL asks once more for the last segment
   * it replayed (to start the new timeline from it), right after taking it:
   * keep a second copy, `<segment>.again`, which the restore_command copies
   * instead of moving. Any other `.again` goes.
   */
  private keepLastAgain(listing: Set<string>, window: string[], pin: ClusterPin): void {
    const last = [...(this.lastTaken ? [this.lastTaken] : []), ...window].find((name) =>
      this.missingUntil.has(nextSegmentName(name, pin.walSegmentSize)),
    );
    if (last && !listing.has(`${last}.again`) && !this.inFlight.has(last)) {
      if (listing.has(last)) this.copyAgain(last);
      else if (last === this.lastTaken && !this.refetched.has(last)) {
        this.refetched.add(last);
        this.inFlight.add(last);
        void this.fetch(pin, last, `${last}.again`);
      }
    }
    for (const file of listing) {
      if (file.endsWith('.again') && file !== `${last}.again`)
        rmSync(join(this.config.spool, file), { force: true });
    }
  }

  /** A second copy of a spooled segment, for the restore_command to copy rather than take. */
  private copyAgain(name: string): void {
    const temporary = join(this.config.spool, `.${name}.again.tmp`);
    try {
      copyFileSync(join(this.config.spool, name), temporary);
      renameSync(temporary, join(this.config.spool, `${name}.again`));
    } catch {
      rmSync(temporary, { force: true }); // taken meanwhile: fetched again on the next round
    }
  }

  /** Removes stale markers and the segments out of the window; returns the window's segments spooled. */
  private tidy(listing: Set<string>, inWindow: Set<string>, probes: string[], now: number): Set<string> {
    const spooled = new Set<string>();
    for (const file of listing) {
      if (file.endsWith('.missing')) {
        const name = file.slice(0, -'.missing'.length);
        // A marker says "not there" for about a second at most: older, or out of sight, it goes.
        const fresh = probes.includes(name)
          ? now - this.probesAnsweredAt < 2 * missingRetryMs
          : inWindow.has(name) &&
            (this.inFlight.has(name) || (this.missingUntil.get(name) ?? 0) > now - missingRetryMs);
        if (!fresh) rmSync(join(this.config.spool, file), { force: true });
        continue;
      }
      if (walFileKind(file) !== 'segment') continue;
      if (inWindow.has(file)) spooled.add(file);
      else if (!this.inFlight.has(file)) {
        this.placed.delete(file);
        rmSync(join(this.config.spool, file), { force: true });
      }
    }
    return spooled;
  }

  /** Fetches what the window lacks, up to `parallel` at once (one in the first round). */
  private startFetches(window: string[], spooled: Set<string>, pin: ClusterPin, now: number): void {
    for (const name of window) {
      if (this.inFlight.size >= (this.round === 0 ? 1 : this.parallel)) break;
      if (spooled.has(name) || this.inFlight.has(name) || (this.missingUntil.get(name) ?? 0) > now) continue;
      // Past the end of the archive there is nothing further to fetch yet.
      if (
        [...this.missingUntil.keys()].some(
          (missing) => missing < name && (this.missingUntil.get(missing) ?? 0) > now,
        )
      ) {
        break;
      }
      this.inFlight.add(name);
      void this.fetch(pin, name);
    }
  }

  private async fetch(pinned: ClusterPin, name: string, as = name): Promise<void> {
    const { spool } = this.config;
    // Tells a restore_command that started pgsnap to wait for this fetch rather than do it again.
    const fetching = join(spool, `${name}.fetching`);
    writeFileSync(fetching, '', { mode: 0o600 });
    try {
      const content = await this.repository.fetchWal(pinned, name);
      if (!content) {
        this.missingUntil.set(name, Date.now() + missingRetryMs);
        writeMarker(spool, name);
        return;
      }
      placeFile(join(spool, `.${as}.tmp`), join(spool, as), content);
      removeMarker(spool, name);
      this.missingUntil.delete(name);
      if (as === name) this.placed.add(name);
      this.fetched += 1;
    } catch (error) {
      // The restore_command fetches it itself and reports the problem where PostgreSQL logs it.
      removeMarker(spool, name);
      this.missingUntil.set(name, Date.now() + missingRetryMs);
      daemonLog(`${name}: ${messageOf(error)}`);
    } finally {
      rmSync(fetching, { force: true });
      this.inFlight.delete(name);
    }
  }

  /** Empties the spool, releases the lock and closes the repository. */
  private empty(): void {
    const { spool } = this.config;
    // Markers first: while the pid file is there, the shell trusts them.
    for (const file of readdirSync(spool)) {
      if (file.endsWith('.missing')) rmSync(join(spool, file), { force: true });
    }
    for (const file of readdirSync(spool)) {
      if (walFileKind(file) === 'segment' || /\.(tmp|fetching|again)$/.test(file))
        rmSync(join(spool, file), { force: true });
    }
    releasePidLock(join(spool, prefetcherLockName));
    this.repository.close();
    daemonLog(`prefetcher stopped after ${this.fetched} segments prefetched`);
  }
}
