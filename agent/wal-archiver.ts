/**
 * Pushing WAL to the repository: one file (`pgsnap wal-push`), and the
 * resident archiver behind `wal-push --async`.
 *
 * The asynchronous mode works as pgBackRest's archive-async does: the archiver
 * watches pg_wal/archive_status for `.ready` files, pushes them in parallel,
 * and leaves `<file>.ok` (or `<file>.error`) in its spool directory; the
 * archive_command finds the `.ok` and returns at once. PostgreSQL removes a
 * segment only after archive_command returned 0 for it, which happens only
 * once its `.ok` exists, so nothing can be lost between the two.
 */
import { readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { messageOf } from '#domain/errors';
import { type ClusterIdentity, type ClusterPin, checkClusterPin } from '#domain/repository/cluster-pin';
import type { PushResult, Repository } from '#domain/repository/repository';
import { checkSegment, requireWalFileName } from '#domain/wal-file';
import { archiverLockName, daemonLog, isAlive, releasePidLock, takePidLock } from './daemon.ts';
import { dataDirectoryIdentity, pgVersionOf, walDirectoryOf } from './pgdata.ts';
import { open, type RepositoryChoice } from './repository-options.ts';

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

/** Pushes one file (`path` relative to the current directory, as %p is). */
export async function pushFile(
  repository: Repository,
  pins: PinCache,
  pgdata: string,
  path: string,
): Promise<PushResult & { name: string }> {
  const name = basename(path);
  requireWalFileName(name);
  const content = await readFile(path);
  const pin = await pins.check(identityOf(name, content, pgdata));
  return { name, ...(await repository.pushWal(pin, name, content)) };
}

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

function postmasterAlive(pgdata: string): boolean {
  try {
    const pid = Number(readFileSync(join(pgdata, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return isAlive(pid);
  } catch {
    return false;
  }
}

/** Writes a status file so that the waiting wal-push sees it whole or not at all. */
function writeStatus(spool: string, file: string, text: string): void {
  const temporary = join(spool, `.${file}.${process.pid}`);
  writeFileSync(temporary, text, { mode: 0o600 });
  renameSync(temporary, join(spool, file));
}

export async function runArchiver(config: ArchiverConfig): Promise<number> {
  const lock = join(config.spool, archiverLockName);
  if (!takePidLock(lock)) return 0;
  const repository = await open(config.repository);
  const pins = new PinCache(repository);
  const statusDir = join(walDirectoryOf(config.pgdata), 'archive_status');
  const inFlight = new Set<string>();
  const retryAt = new Map<string, { at: number; delayMs: number }>();
  let idleSince = Date.now();
  let stopping = false;
  const stop = () => {
    stopping = true;
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  daemonLog(`archiver started for ${config.pgdata} → ${repository.url}, ${config.parallel} in parallel`);

  const push = async (name: string) => {
    const started = Date.now();
    try {
      const result = await pushFile(
        repository,
        pins,
        config.pgdata,
        join(walDirectoryOf(config.pgdata), name),
      );
      writeStatus(
        config.spool,
        `${name}.ok`,
        `${result.status} ${result.sha256} ${Date.now() - started}ms\n`,
      );
      rmSync(join(config.spool, `${name}.error`), { force: true });
      retryAt.delete(name);
    } catch (error) {
      const delayMs = Math.min((retryAt.get(name)?.delayMs ?? 500) * 2, 30_000);
      retryAt.set(name, { at: Date.now() + delayMs, delayMs });
      writeStatus(config.spool, `${name}.error`, `${(error as Error).name}: ${messageOf(error)}\n`);
      daemonLog(`${name}: ${messageOf(error)} (retrying in ${delayMs}ms)`);
    } finally {
      inFlight.delete(name);
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
      const pushed = new Set<string>();
      for (const file of readdirSync(config.spool)) {
        if (!file.endsWith('.ok')) continue;
        const name = file.slice(0, -'.ok'.length);
        // Once the server has marked the file .done, its .ok has served its purpose.
        if (readySet.has(name)) pushed.add(name);
        else rmSync(join(config.spool, file), { force: true });
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
      await new Promise((resolve) => setTimeout(resolve, inFlight.size >= config.parallel ? 5 : 20));
    }
    while (inFlight.size > 0) await new Promise((resolve) => setTimeout(resolve, 10));
  } finally {
    releasePidLock(lock);
    repository.close();
    daemonLog('archiver stopped');
  }
  return 0;
}
