/**
 * Pushing WAL to the repository: one file (`pgsnap wal-push`), and the
 * resident pusher behind `wal-push --async`.
 *
 * The asynchronous mode works as pgBackRest's archive-async does: the pusher
 * watches pg_wal/archive_status for `.ready` files, pushes them in parallel,
 * and, only once an object is stored with its checksum, leaves
 * `<file>.<status key>.ok` (or `<file>.error` with the reason) in its spool.
 * The archive_command (shell-lines.ts) finds the `.ok` with the shell and
 * returns at once, without starting Node.js. PostgreSQL removes a segment only
 * after archive_command returned 0 for it, which happens only once its `.ok`
 * exists, so nothing can be lost between the two. The status key ties an
 * `.ok` to the very file that was pushed (see statusKey).
 */
import {
  closeSync,
  type FSWatcher,
  fstatSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { messageOf } from '#domain/errors';
import { type ClusterIdentity, type ClusterPin, checkClusterPin } from '#domain/repository/cluster-pin';
import type { PushResult, Repository } from '#domain/repository/repository';
import { checkSegment, checkTimelineHistory, requireWalFileName } from '#domain/wal/file';
import * as z from '#domain/zod';
import { repositoryChoiceSchema } from '../host/background-config.ts';
import { open, type RepositoryChoice } from '../host/repository.ts';
import { dataDirectoryIdentity, pgVersionOf, walDirectoryOf } from '../postgres/pgdata.ts';
import { archiverLockName, daemonLog, postmasterAlive, releasePidLock, takePidLock } from './daemon.ts';
import { errorStatusName, okStatusName, statusKeyOf } from './shell-lines.ts';

/** Pins the cluster once per process, then checks every later file against the pin without asking again. */
export class PinCache {
  private pin: Promise<ClusterPin> | undefined;

  constructor(private readonly repository: Repository) {}

  async check(identity: ClusterIdentity): Promise<ClusterPin> {
    this.pin ??= this.repository.pin(identity, 'pgsnap wal-push');
    this.pin.catch(() => {
      this.pin = undefined;
    });
    const pin = await this.pin;
    checkClusterPin(pin, identity, this.repository.url);
    return pin;
  }
}

/** The cluster a file belongs to: a segment says so in its header; other files, through the data directory. */
function identityOf(name: string, content: Buffer, pgdata: string): ClusterIdentity {
  const kind = requireWalFileName(name);
  if (kind === 'segment' || kind === 'partial') {
    const header = checkSegment(name, content, kind);
    const pgVersion = pgVersionOf(pgdata);
    return {
      systemIdentifier: header.systemIdentifier,
      walSegmentSize: header.segmentSize,
      ...(pgVersion ? { pgVersion } : {}),
    };
  }
  if (kind === 'history') checkTimelineHistory(name, content);
  try {
    return dataDirectoryIdentity(pgdata);
  } catch (error) {
    throw new Error(
      `cannot tell which cluster ${name} belongs to: ${messageOf(error)}. Run wal-push in the data ` +
        'directory (PostgreSQL does) or pass --pgdata',
      { cause: error },
    );
  }
}

/**
 * Pushes one file (`path` relative to the current directory, as %p is). The
 * status key comes from the open file the content was read from, so it names
 * exactly what was pushed.
 */
export async function pushFile(
  repository: Repository,
  pins: PinCache,
  pgdata: string,
  path: string,
): Promise<PushResult & { name: string; statusKey: string }> {
  const name = basename(path);
  requireWalFileName(name);
  // Read on this thread (readFileSync of the open file: one buffer of its size): a segment is in the page
  // cache, and the promise API's 512 KiB steps through libuv's pool would queue behind other pushes' compression.
  const fd = openSync(path, 'r');
  let content: Buffer;
  let statusKey: string;
  try {
    statusKey = statusKeyOf(fstatSync(fd, { bigint: true }));
    content = readFileSync(fd);
  } finally {
    closeSync(fd);
  }
  const pin = await pins.check(identityOf(name, content, pgdata));
  return { name, statusKey, ...(await repository.pushWal(pin, name, content)) };
}

/** `<file>.<status key>.ok`, split; undefined for other names. */
function parseOkStatus(file: string): { name: string; key: string } | undefined {
  const match = /^(.+)\.(\d+-\d+-\d+\.\d{9})\.ok$/.exec(file);
  return match ? { name: match[1]!, key: match[2]! } : undefined;
}

/** The status key of a file in pg_wal now, or undefined when it is gone. */
function currentKey(walDir: string, name: string): string | undefined {
  try {
    return statusKeyOf(statSync(join(walDir, name), { bigint: true }));
  } catch {
    return undefined;
  }
}

/** ArchiverConfig as the archiver reads it from its argv. */
export const archiverConfigSchema = z.strictObject({
  pgdata: z.string(),
  spool: z.string(),
  repository: repositoryChoiceSchema,
  parallel: z.number(),
  idleExitMs: z.number(),
}) satisfies z.ZodMiniType<ArchiverConfig>;

export interface ArchiverConfig {
  pgdata: string;
  spool: string;
  repository: RepositoryChoice;
  parallel: number;
  /** The archiver exits after this long with nothing to push; the next wal-push starts it again. */
  idleExitMs: number;
}

/** Timeline history files first, as the server's own archiver orders them, then by name. */
function archiveOrder(a: string, b: string): number {
  const ah = a.endsWith('.history') ? 0 : 1;
  const bh = b.endsWith('.history') ? 0 : 1;
  return ah - bh || (a < b ? -1 : a > b ? 1 : 0);
}

/** Writes a status file so that the waiting wal-push sees it whole or not at all. */
function writeStatus(spool: string, file: string, text: string): void {
  const temporary = join(spool, `.${file}.${process.pid}`);
  try {
    writeFileSync(temporary, text, { mode: 0o600 });
    renameSync(temporary, join(spool, file));
  } catch (error) {
    // A full spool (ENOSPC) must not leave a temporary behind each time it is tried.
    rmSync(temporary, { force: true });
    throw error;
  }
}

export async function runArchiver(config: ArchiverConfig): Promise<number> {
  const lock = join(config.spool, archiverLockName);
  if (!takePidLock(lock)) return 0;
  const repository = await open(config.repository);
  const pins = new PinCache(repository);
  const walDir = walDirectoryOf(config.pgdata);
  const statusDir = join(walDir, 'archive_status');
  const inFlight = new Set<string>();
  /** What this pusher stored, by name, with the status key of the file it read. */
  const pushed = new Map<string, string>();
  const retryAt = new Map<string, { at: number; delayMs: number }>();
  let idleSince = Date.now();
  let stopping = false;
  let woken = false;
  let wakeUp: (() => void) | undefined;
  const wake = () => {
    woken = true;
    wakeUp?.();
  };
  const stop = () => {
    stopping = true;
    wake();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // wal-push asks again for a file that failed: try everything now instead of after the back-off.
  process.on('SIGUSR1', () => {
    retryAt.clear();
    wake();
  });
  // A new .ready file wakes the pusher at once; the timer is the fallback where inotify is not available.
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(statusDir, () => wake());
    watcher.on('error', () => {});
  } catch {}
  daemonLog(`archiver started for ${config.pgdata} → ${repository.url}, ${config.parallel} in parallel`);

  const push = async (name: string) => {
    const started = Date.now();
    try {
      const result = await pushFile(repository, pins, config.pgdata, join(walDir, name));
      // The object is stored, with its checksum, before the status that lets the shell say so.
      writeStatus(
        config.spool,
        okStatusName(name, result.statusKey),
        `${result.status} ${result.sha256} ${Date.now() - started}ms\n`,
      );
      pushed.set(name, result.statusKey);
      rmSync(join(config.spool, errorStatusName(name)), { force: true });
      retryAt.delete(name);
    } catch (error) {
      const delayMs = Math.min((retryAt.get(name)?.delayMs ?? 250) * 2, 30_000);
      retryAt.set(name, { at: Date.now() + delayMs, delayMs });
      daemonLog(`${name}: ${messageOf(error)} (retrying in ${delayMs}ms)`);
      try {
        writeStatus(config.spool, errorStatusName(name), `${(error as Error).name}: ${messageOf(error)}\n`);
      } catch (statusError) {
        // The spool is full: wal-push sees that for itself (spoolFull) and reports it to PostgreSQL.
        daemonLog(`${name}: cannot write its status in ${config.spool}: ${messageOf(statusError)}`);
      }
    } finally {
      inFlight.delete(name);
      wake();
    }
  };

  try {
    while (!stopping) {
      let ready: string[];
      try {
        ready = readdirSync(statusDir)
          .filter((f) => f.endsWith('.ready'))
          .map((f) => f.slice(0, -'.ready'.length))
          .sort(archiveOrder);
      } catch {
        break; // the data directory is gone
      }
      const now = Date.now();
      const readySet = new Set(ready);
      for (const [name, key] of pushed) {
        // Done (.done now), or no longer the file that was pushed: forget it, and push the new one.
        if (!readySet.has(name) || (!inFlight.has(name) && currentKey(walDir, name) !== key)) {
          pushed.delete(name);
        }
      }
      for (const file of readdirSync(config.spool)) {
        const status = parseOkStatus(file);
        if (!status || inFlight.has(status.name) || pushed.get(status.name) === status.key) continue;
        if (readySet.has(status.name) && currentKey(walDir, status.name) === status.key) {
          // An earlier pusher stored this very file: nothing to push again.
          pushed.set(status.name, status.key);
        } else {
          // Served its purpose (the server marked the file .done), or written for another file of that
          // name before the data directory changed: it must not answer for the file there now.
          rmSync(join(config.spool, file), { force: true });
        }
      }
      const todo = ready.filter(
        (name) => !inFlight.has(name) && !pushed.has(name) && (retryAt.get(name)?.at ?? 0) <= now,
      );
      for (const name of todo.slice(0, config.parallel - inFlight.size)) {
        inFlight.add(name);
        void push(name);
      }
      if (inFlight.size > 0 || todo.length > 0) idleSince = now;
      else if (now - idleSince > config.idleExitMs || !postmasterAlive(config.pgdata)) break;
      await new Promise<void>((resolve) => {
        if (woken) return resolve();
        const timer = setTimeout(resolve, 50);
        wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      woken = false;
      wakeUp = undefined;
    }
    while (inFlight.size > 0) await new Promise((resolve) => setTimeout(resolve, 10));
  } finally {
    watcher?.close();
    releasePidLock(lock);
    repository.close();
    daemonLog('archiver stopped');
  }
  return 0;
}
