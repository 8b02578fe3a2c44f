/**
 * A held backup session: the one connection that ran pg_backup_start, from
 * `begin` to `end`. The same code runs in the two places a session can be
 * held: a detached holder process per backup (holder.ts) and the resident
 * agent service, which holds several clusters' sessions at once
 * (service.ts). What differs between them (how begin is told that
 * backup mode started, where the log goes, what ending means for the
 * process) comes in as hooks.
 */
import { readFileSync, statSync } from 'node:fs';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { BackupInvalidError, messageOf, PreconditionError } from '#domain/errors';
import {
  backupHistoryFileName,
  formatLsn,
  parseBackupLabel,
  parseLsn,
  walFileName,
  walFileNameBefore,
} from '#domain/wal/lsn';
import {
  type BackupSession,
  ClusterState,
  type Outcome,
  type SessionRecord,
  type StoppedRecord,
} from '../host/state.ts';
import {
  type Client,
  connect,
  currentTimeline,
  hardenSession,
  type ServerFacts,
  startBackup,
  stopBackup,
} from '../postgres/client.ts';
import type { SessionConfig } from './config.ts';
import { type ControlRequest, listen } from './control.ts';
import { isHeldHere } from './inspect.ts';
import { identify, type ProcessIdentity, stillRunning, stopProcessGroup } from './owner.ts';
import { preflight } from './preflight.ts';
import { describeBackupSession, otherBackupSessions } from './server-sessions.ts';

/** What begin is told once: backup mode started, or why not. */
export type SessionReport =
  | { ok: true; session: BackupSession }
  | { ok: false; error: { name: string; message: string } };

export interface SessionHooks {
  /** The process recorded as holding the session (holderPid). */
  pid: number;
  heldBy: 'holder' | 'agent';
  /** libpq settings of the `begin` that asked for the session. */
  env: NodeJS.ProcessEnv;
  report(report: SessionReport): void;
  log(message: string): void;
}

export interface HeldSession {
  /** Resolves once the session is closed and its outcome recorded, with the holder's exit code. */
  finished: Promise<number>;
  /** Ends the session without artifacts (a signal to the holder, the agent service stopping). */
  abort(reason: string): Promise<number>;
}

const heartbeatMs = 5_000;
const ownerCheckMs = 500;

/**
 * Opens the session, runs pg_backup_start and holds it until `end`, `abort`,
 * the maximum duration, or the session's loss. Its control socket and state
 * files are the same whichever process holds it.
 */
export function holdSession(config: SessionConfig, hooks: SessionHooks): HeldSession {
  const holding = new Holding(config, hooks);
  holding.start().catch((error: Error) => holding.failToStart(error));
  return { finished: holding.finished, abort: (reason) => holding.finish('aborted', reason, 1) };
}

/**
 * One session's life. `start` runs its phases in order (listen, connect,
 * preflight, backup mode, watch); `answer` serves the control socket
 * meanwhile; `finish` ends it from any of them, and only once.
 */
class Holding {
  private readonly config: SessionConfig;
  private readonly hooks: SessionHooks;
  private readonly state: ClusterState;
  private readonly startedAt = new Date();
  private session: SessionRecord;
  private client: Client | undefined;
  private server: Server | undefined;
  private finishing = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private expiry: NodeJS.Timeout | undefined;
  private ownerWatch: NodeJS.Timeout | undefined;
  /** The snapshot command's process group, once `pgsnap run` has said it (op `command`). */
  private commandGroup: number | undefined;
  private resolveFinished: (exitCode: number) => void = () => {};
  /** Resolves once the session is closed and its outcome recorded, with the holder's exit code. */
  readonly finished = new Promise<number>((resolve) => {
    this.resolveFinished = resolve;
  });

  /** Records the session as starting and takes begin's lock over, before anything can fail. */
  constructor(config: SessionConfig, hooks: SessionHooks) {
    this.config = config;
    this.hooks = hooks;
    this.state = new ClusterState(config.stateRoot, config.key);
    this.session = {
      backupId: config.backupId,
      label: config.label,
      fast: config.fast,
      holderPid: hooks.pid,
      heldBy: hooks.heldBy,
      startedAt: this.startedAt.toISOString(),
      maxDurationMs: config.maxDurationMs,
      expiresAt: new Date(this.startedAt.getTime() + config.maxDurationMs).toISOString(),
      state: 'starting',
    };
    this.state.writeSession(this.session);
    this.state.passLock(config.backupId, hooks.pid);
    if (config.ownerPid !== undefined) this.watchOwner(identify(config.ownerPid));
  }

  /** The `pgsnap run` the backup belongs to: once it is gone, its snapshot command is stopped and the backup aborted. */
  private watchOwner(owner: ProcessIdentity): void {
    this.ownerWatch = setInterval(() => {
      if (this.finishing || stillRunning(owner)) return;
      clearInterval(this.ownerWatch);
      void (async () => {
        const group = this.commandGroup;
        if (group !== undefined) await stopProcessGroup(group);
        await this.finish(
          'aborted',
          `pgsnap run (pid ${owner.pid}) is gone before it ended the backup (killed?)` +
            (group !== undefined ? `; its snapshot command (process group ${group}) was stopped` : ''),
          1,
        );
      })();
    }, ownerCheckMs);
  }

  async start(): Promise<void> {
    this.server = await listen(this.state.socketPath, (request) => this.answer(request));
    const client = await this.connect();
    const facts = await this.checkPreflight(client);
    await this.refuseSecondBackup(client);
    const session = await this.startBackupMode(client, facts);
    this.watch(client, facts.backendPid);
    this.hooks.report({ ok: true, session });
  }

  failToStart(error: Error): void {
    this.hooks.report({ ok: false, error: { name: error.name, message: error.message } });
    void this.finish('failed', error.message, 1);
  }

  /** Opens the one connection that holds the backup; its loss ends the session. */
  private async connect(): Promise<Client> {
    const client = await connect({ applicationName: `pgsnap:${this.config.backupId}`, env: this.hooks.env });
    this.client = client;
    // An abort that came while connecting found nothing to close; in the agent service nothing else would.
    if (this.finishing) {
      await client.end().catch(() => {});
      this.server?.close();
      throw new Error('the backup was aborted before it started');
    }
    client.on('end', () =>
      this.lose('the backup session closed unexpectedly (server restart or terminated backend)'),
    );
    client.on('error', (error) => this.lose(`the backup session failed: ${error.message}`));
    return client;
  }

  /**
   * Preflight runs on the session that will hold the backup, so what it
   * checks is what the backup gets; the session is then hardened.
   */
  private async checkPreflight(client: Client): Promise<ServerFacts> {
    const { facts, findings } = await preflight(client);
    const failed = findings.filter((f) => !f.ok && f.severity === 'error');
    if (failed.length > 0) {
      throw new PreconditionError(
        `cannot start a backup:\n${failed.map((f) => `  - ${f.message}`).join('\n')}\n` +
          '(run pgsnap preflight for all checks)',
      );
    }
    for (const warning of findings.filter((f) => !f.ok)) this.hooks.log(`warning: ${warning.message}`);
    await hardenSession(client, facts.versionNum);
    return facts;
  }

  /**
   * One backup per cluster, whoever started the other: PostgreSQL allows
   * concurrent non-exclusive backups, but two pgsnap backups of one cluster
   * (root's and postgres's, two state directories) would race for the same
   * snapshot and catalog. The server's pg_stat_activity sees them all. Of two
   * begins racing, the session that connected first goes on: the other sees it.
   */
  private async refuseSecondBackup(client: Client): Promise<void> {
    const { rows } = await client.query<{ since: Date }>(
      'SELECT backend_start AS since FROM pg_stat_activity WHERE pid = pg_backend_pid()',
    );
    const mine = new Date(rows[0]!.since).toISOString();
    const serverPid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const earlierSessions = async () =>
      (await otherBackupSessions(client)).filter(
        (s) => s.since < mine || (s.since === mine && s.serverPid < serverPid),
      );
    let earlier = await earlierSessions();
    // A session closed just now (abort, end, then begin at once) leaves pg_stat_activity a moment after its
    // client has gone: give it that moment before calling it a backup in progress.
    for (let waited = 0; earlier.length > 0 && waited < 3_000; waited += 100) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      earlier = await earlierSessions();
    }
    if (earlier.length > 0) {
      throw new PreconditionError(
        `another pgsnap backup of this cluster is in progress on the server: ${earlier.map(describeBackupSession).join('; ')}. ` +
          'One backup runs at a time: wait for it to end, or end it with pgsnap end or pgsnap abort as the user ' +
          'who began it (with its state directory), or discard it with SELECT pg_terminate_backend(pid)',
      );
    }
  }

  /** pg_backup_start, and the session recorded as in backup mode with what a restore needs of it. */
  private async startBackupMode(client: Client, facts: ServerFacts): Promise<BackupSession> {
    // The backup starts when pg_backup_start is called (its START TIME), not when the holder did.
    const backupStartedAt = new Date().toISOString();
    const callStarted = performance.now();
    const startLsn = await startBackup(client, facts.versionNum, this.config.label, this.config.fast);
    const startCallMs = Math.round(performance.now() - callStarted);
    const timeline = await currentTimeline(client);
    const session: BackupSession = {
      ...this.session,
      state: 'in-backup',
      startedAt: backupStartedAt,
      serverPid: facts.backendPid,
      startLsn,
      startWalFile: walFileName(timeline, parseLsn(startLsn), facts.segmentSize),
      timeline,
      systemIdentifier: facts.systemIdentifier,
      serverVersion: facts.version,
      versionNum: facts.versionNum,
      segmentSize: facts.segmentSize,
      fromStandby: facts.inRecovery,
      startCallMs,
      ...(facts.sharedPreloadLibraries ? { sharedPreloadLibraries: facts.sharedPreloadLibraries } : {}),
      ...(facts.dataDirectory ? ownerOf(facts.dataDirectory) : {}),
    };
    this.session = session;
    this.state.writeSession(session);
    this.hooks.log(`backup ${this.config.backupId} started at ${startLsn} on backend ${facts.backendPid}`);
    return session;
  }

  /** The heartbeat, which notices a session moved to another backend, and the maximum duration. */
  private watch(client: Client, pidAtStart: number): void {
    this.heartbeat = setInterval(() => {
      if (this.finishing || this.session.state !== 'in-backup') return;
      client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid').then(
        ({ rows }) => {
          // A pooler in transaction mode can hand us another backend: the backup would be lost silently.
          if (rows[0]?.pid !== pidAtStart) {
            this.lose(`the session moved from backend ${pidAtStart} to ${rows[0]?.pid} (a pooler?)`);
          }
        },
        (error: Error) => this.lose(`the backup session failed: ${error.message}`),
      );
    }, heartbeatMs);
    this.expiry = setTimeout(() => {
      if (this.session.state === 'in-backup') {
        void this.finish(
          'expired',
          `the maximum backup duration of ${this.config.maxDurationMs / 1000}s passed`,
          1,
        );
      }
    }, this.config.maxDurationMs);
  }

  private lose(reason: string): void {
    if (!this.finishing) void this.finish('lost', reason, 1);
  }

  /** The control socket: status, abort, and end, which stops the backup. */
  private async answer(request: ControlRequest): Promise<Record<string, unknown>> {
    switch (request.op) {
      case 'status':
        return { ...this.session, elapsedMs: Date.now() - this.startedAt.getTime() };
      case 'abort':
        this.refuseAnother(request.backupId, 'abort');
        setImmediate(() => void this.finish('aborted', request.reason, 0));
        return { ...this.session, aborted: true, reason: request.reason };
      case 'end':
        this.refuseAnother(request.backupId, 'end');
        return { ...(await this.end()) };
      case 'command':
        this.refuseAnother(request.backupId, 'end');
        this.commandGroup = request.group;
        return { backupId: this.session.backupId, group: request.group };
    }
  }

  /** A request for another backup must leave this one as it is: the asker did not start it. */
  private refuseAnother(backupId: string | undefined, op: 'end' | 'abort'): void {
    if (isHeldHere(backupId, this.session)) return;
    throw new PreconditionError(
      `backup ${backupId} is not in progress here: backup ${this.session.backupId} is, and pgsnap ${op} ` +
        'leaves it as it is',
    );
  }

  /** pg_backup_stop, its result kept durably for `end` to hand over, then the session closed. */
  private async end(): Promise<StoppedRecord> {
    if (this.session.state !== 'in-backup' || !this.client) {
      throw new PreconditionError(
        `backup ${this.session.backupId} is ${this.session.state}, not in backup mode yet; wait for begin to return`,
      );
    }
    const stopping: BackupSession = { ...this.session, state: 'stopping' };
    this.session = stopping;
    this.state.writeSession(stopping);
    try {
      const stopped = await stop(this.client, stopping);
      this.state.writeStopped(stopped);
      setImmediate(() => void this.finish('stopped', `backup mode ended at ${stopped.stopLsn}`, 0));
      return stopped;
    } catch (error) {
      const reason = `pg_backup_stop failed: ${messageOf(error)}`;
      setImmediate(() => void this.finish('lost', reason, 1));
      throw new BackupInvalidError(`backup ${this.session.backupId} is not valid: ${reason}`);
    }
  }

  /** Closing the session makes PostgreSQL abort a backup that was not stopped. */
  async finish(outcome: Outcome | 'stopped', reason: string, exitCode: number): Promise<number> {
    // The first cause is the one recorded: an abort during pg_backup_start also makes the start fail.
    if (this.finishing) return this.finished;
    this.finishing = true;
    clearInterval(this.heartbeat);
    clearInterval(this.ownerWatch);
    clearTimeout(this.expiry);
    this.hooks.log(`${outcome}: ${reason}`);
    await this.client?.end().catch(() => {});
    // Let a pending answer on the control channel reach its reader before the session's socket goes.
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      setTimeout(resolve, 2_000).unref();
    });
    this.state.clearSession();
    if (outcome !== 'stopped') {
      this.state.writeOutcome({
        backupId: this.session.backupId,
        label: this.session.label,
        outcome,
        reason,
        at: new Date().toISOString(),
        startedAt: this.session.startedAt,
      });
    }
    // After a stop, the durable stopped record keeps the next begin out until `end` has handed the artifacts
    // over; the lock must not outlive the session, since the agent service's pid stays alive.
    this.state.unlock(this.session.backupId);
    this.resolveFinished(exitCode);
    return exitCode;
  }
}

/** Stops the backup and collects everything a restore needs, before anything can lose it. */
async function stop(client: Client, session: BackupSession): Promise<StoppedRecord> {
  const callStarted = performance.now();
  const result = await stopBackup(client, session.versionNum);
  const stopCallMs = Math.round(performance.now() - callStarted);
  const stoppedAt = new Date().toISOString();
  const label = parseBackupLabel(result.labelFile);
  const segmentSize = session.segmentSize;
  const stopLsn = parseLsn(result.lsn);
  let historyFileName: string | undefined;
  let historyFile: string | undefined;
  let stopTimeline = label.startTimeline;
  if (!session.fromStandby) {
    // Only a primary writes a backup history file (do_pg_backup_stop). Read it now: the next backup's stop
    // may delete it from pg_wal once it is archived.
    historyFileName = backupHistoryFileName(label.startTimeline, label.startLsn, segmentSize);
    historyFile = await readWalDirFile(client, historyFileName);
    if (historyFile) stopTimeline = parseBackupLabel(historyFile).stopTimeline ?? stopTimeline;
  } else {
    const { rows } = await client.query<{ tli: number }>(
      'SELECT min_recovery_end_timeline AS tli FROM pg_control_recovery()',
    );
    stopTimeline = Number(rows[0]?.tli) || stopTimeline;
  }
  return {
    ...session,
    state: 'stopping',
    stopLsn: formatLsn(stopLsn),
    stopWalFile: walFileNameBefore(stopTimeline, stopLsn, segmentSize),
    stopTimeline,
    stoppedAt,
    stopCallMs,
    labelFile: result.labelFile,
    tablespaceMap: result.tablespaceMap,
    ...(historyFileName ? { historyFileName } : {}),
    ...(historyFile !== undefined ? { historyFile } : {}),
  };
}

/**
 * Reads a file from pg_wal through the server (superuser, or EXECUTE on
 * pg_read_binary_file), falling back to the file system when the agent runs on
 * the host with access to the data directory.
 */
async function readWalDirFile(client: Client, name: string): Promise<string | undefined> {
  try {
    const { rows } = await client.query<{ content: Buffer }>(
      "SELECT pg_read_binary_file('pg_wal/' || $1::text) AS content",
      [name],
    );
    return rows[0]!.content.toString('utf8');
  } catch {
    try {
      const { rows } = await client.query<{ dir: string }>("SELECT current_setting('data_directory') AS dir");
      return readFileSync(join(rows[0]!.dir, 'pg_wal', name), 'utf8');
    } catch {
      return undefined;
    }
  }
}

/** The uid that owns the data directory, when this host can see it (the agent runs beside the server). */
function ownerOf(dataDirectory: string): { serverUid?: number } {
  try {
    return { serverUid: statSync(dataDirectory).uid };
  } catch {
    return {};
  }
}
