/**
 * The agent's local state: one directory per cluster on this host, reachable
 * only by its owner (0700), holding the holder's control socket, the session
 * record, artifacts of a stopped backup not yet handed over, and the outcome of
 * the last backup.
 */
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { connectionTarget } from '../postgres/client.ts';
import { createLockFile } from './lock-file.ts';
import { privateDirectory } from './private-dir.ts';

/** What a session record holds from its first moment, before the server is in backup mode. */
interface SessionBase {
  backupId: string;
  label: string;
  fast: boolean;
  /** The process holding the session: a holder of its own, or the agent service. */
  holderPid: number;
  heldBy?: 'holder' | 'agent';
  startedAt: string;
  maxDurationMs: number;
  expiresAt: string;
}

/** What pg_backup_start and the server told, recorded once the server is in backup mode. */
export interface BackupStart {
  serverPid: number;
  startLsn: string;
  startWalFile: string;
  timeline: number;
  systemIdentifier: string;
  serverVersion: string;
  versionNum: number;
  segmentSize: number;
  fromStandby: boolean;
  /** How long pg_backup_start took, as the holder saw it. */
  startCallMs?: number;
  /** What a restore target must match (the manifest's `server`), when the role may read them. */
  sharedPreloadLibraries?: string[];
  serverUid?: number;
}

/** A session connecting and checking, not yet in backup mode. */
export interface StartingSession extends SessionBase {
  state: 'starting';
}

/** A session whose server is in backup mode, or whose pg_backup_stop is under way. */
export interface BackupSession extends SessionBase, BackupStart {
  state: 'in-backup' | 'stopping';
}

export type SessionRecord = StartingSession | BackupSession;

export interface StoppedRecord extends SessionBase, BackupStart {
  state: 'stopping';
  stopLsn: string;
  stopWalFile: string;
  stopTimeline: number;
  stoppedAt: string;
  stopCallMs: number;
  labelFile: string;
  tablespaceMap: string;
  historyFileName?: string;
  historyFile?: string;
}

export type Outcome = 'completed' | 'aborted' | 'expired' | 'lost' | 'failed';

export interface OutcomeRecord {
  backupId: string;
  label: string;
  outcome: Outcome;
  reason: string;
  at: string;
  startedAt?: string;
}

export { defaultStateRoot } from './settings.ts';

/** The agent service's control socket, in the state root beside the clusters' directories. */
export function agentSocketPath(stateRoot: string): string {
  return join(stateRoot, 'agent.sock');
}

/**
 * The key of a cluster on this host: its name when the operator gave one,
 * otherwise the connection target, so that `begin` and `end` run with the same
 * PG* variables meet the same holder.
 */
export function clusterKey(cluster: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (cluster) return cluster;
  const { host, port } = connectionTarget(env);
  return `pg-${port}-${createHash('sha256').update(`${host}:${port}`).digest('hex').slice(0, 10)}`;
}

/** Creates `path` 0700, or checks that it is ours and private. */
export function ensurePrivateDir(path: string): void {
  privateDirectory(path);
}

/**
 * Writes a file so that a reader sees either the old or the new content, never a
 * torn one; with `durable` it also survives a power loss (fsync of file and directory).
 */
export function writeFileAtomically(
  path: string,
  content: string | Buffer,
  options: { durable: boolean },
): void {
  const temporary = `${path}.tmp-${process.pid}`;
  const fd = openSync(temporary, 'w', 0o600);
  try {
    writeSync(fd, typeof content === 'string' ? Buffer.from(content, 'utf8') : content);
    if (options.durable) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
  if (!options.durable) return;
  const dir = openSync(join(path, '..'), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/** For what must not be lost: a stopped backup's artifacts, outcomes, files handed to the operator. */
export function writeFileDurably(path: string, content: string | Buffer): void {
  writeFileAtomically(path, content, { durable: true });
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

export class ClusterState {
  readonly dir: string;

  constructor(
    root: string,
    readonly key: string,
  ) {
    ensurePrivateDir(root);
    this.dir = join(root, key);
    ensurePrivateDir(this.dir);
  }

  get socketPath(): string {
    return join(this.dir, 'holder.sock');
  }
  get logPath(): string {
    return join(this.dir, 'holder.log');
  }
  private get lockPath(): string {
    return join(this.dir, 'lock');
  }

  /** Takes the one-backup-at-a-time lock for `pid`; false if it is already taken. */
  tryLock(backupId: string, pid = process.pid): boolean {
    return createLockFile(this.lockPath, `${JSON.stringify({ backupId, pid })}\n`);
  }

  readLock(): { backupId: string; pid: number } | undefined {
    try {
      return readJson<{ backupId: string; pid: number }>(this.lockPath);
    } catch {
      // Never half-written (createLockFile), but perhaps empty after a power loss: its backup never started.
      return { backupId: 'unknown', pid: -1 };
    }
  }

  /** Hands the lock to another process (begin → holder), so liveness follows the process that holds it. */
  passLock(backupId: string, pid: number): void {
    writeFileAtomically(this.lockPath, `${JSON.stringify({ backupId, pid })}\n`, { durable: false });
  }

  /** Releases the lock; with a backupId, only if that backup still holds it (not a later begin). */
  unlock(backupId?: string): void {
    if (backupId !== undefined && this.readLock()?.backupId !== backupId) return;
    rmSync(this.lockPath, { force: true });
  }

  readSession(): SessionRecord | undefined {
    return readJson<SessionRecord>(join(this.dir, 'session.json'));
  }
  writeSession(session: SessionRecord): void {
    // Not fsynced: a host crash ends the backup session too, so the record has nothing left to describe.
    writeFileAtomically(join(this.dir, 'session.json'), JSON.stringify(session, null, 2), { durable: false });
  }
  clearSession(): void {
    rmSync(join(this.dir, 'session.json'), { force: true });
    rmSync(this.socketPath, { force: true });
  }

  readStopped(): StoppedRecord | undefined {
    return readJson<StoppedRecord>(join(this.dir, 'stopped.json'));
  }
  writeStopped(stopped: StoppedRecord): void {
    writeFileDurably(join(this.dir, 'stopped.json'), JSON.stringify(stopped, null, 2));
  }
  clearStopped(): void {
    rmSync(join(this.dir, 'stopped.json'), { force: true });
  }

  readOutcome(): OutcomeRecord | undefined {
    return readJson<OutcomeRecord>(join(this.dir, 'last.json'));
  }
  /** Durable by default: an aborted, expired or lost backup must be reported as such after a crash too. */
  writeOutcome(outcome: OutcomeRecord, options = { durable: true }): void {
    writeFileAtomically(join(this.dir, 'last.json'), JSON.stringify(outcome, null, 2), options);
  }
}
