/**
 * A held backup session: the one connection that ran pg_backup_start, from
 * `begin` to `end`. The same code runs in the two places a session can be
 * held: a detached holder process per backup (holder.ts) and the resident
 * agent service, which holds several clusters' sessions at once
 * (agent-service.ts). What differs between them (how begin is told that
 * backup mode started, where the log goes, what ending means for the
 * process) comes in as hooks.
 */
import { readFileSync } from 'node:fs';
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
  type Client,
  connect,
  currentTimeline,
  hardenSession,
  startBackup,
  stopBackup,
} from '../postgres/client.ts';
import type { SessionConfig } from './config.ts';
import { type ControlRequest, listen } from './control.ts';
import { preflight } from './preflight.ts';
import { ClusterState, type Outcome, type SessionRecord, type StoppedRecord } from './state.ts';

/** What begin is told once: backup mode started, or why not. */
export type SessionReport =
  | { ok: true; session: SessionRecord }
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

/**
 * Opens the session, runs pg_backup_start and holds it until `end`, `abort`,
 * the maximum duration, or the session's loss. Its control socket and state
 * files are the same whichever process holds it.
 */
export function holdSession(config: SessionConfig, hooks: SessionHooks): HeldSession {
  const state = new ClusterState(config.stateRoot, config.key);
  const startedAt = new Date();
  let session: SessionRecord = {
    backupId: config.backupId,
    label: config.label,
    fast: config.fast,
    holderPid: hooks.pid,
    heldBy: hooks.heldBy,
    startedAt: startedAt.toISOString(),
    maxDurationMs: config.maxDurationMs,
    expiresAt: new Date(startedAt.getTime() + config.maxDurationMs).toISOString(),
    state: 'starting',
  };
  state.writeSession(session);
  state.passLock(config.backupId, hooks.pid);

  let client: Client | undefined;
  let server: Server | undefined;
  let finishing = false;
  let heartbeat: NodeJS.Timeout | undefined;
  let expiry: NodeJS.Timeout | undefined;
  let resolveFinished: (exitCode: number) => void = () => {};
  const finished = new Promise<number>((resolve) => {
    resolveFinished = resolve;
  });

  /** Closing the session makes PostgreSQL abort a backup that was not stopped. */
  const finish = async (outcome: Outcome | 'stopped', reason: string, exitCode: number): Promise<number> => {
    // The first cause is the one recorded: an abort during pg_backup_start also makes the start fail.
    if (finishing) return finished;
    finishing = true;
    clearInterval(heartbeat);
    clearTimeout(expiry);
    hooks.log(`${outcome}: ${reason}`);
    await client?.end().catch(() => {});
    // Let a pending answer on the control channel reach its reader before the session's socket goes.
    await new Promise<void>((resolve) => {
      if (!server) return resolve();
      server.close(() => resolve());
      setTimeout(resolve, 2_000).unref();
    });
    state.clearSession();
    if (outcome !== 'stopped') {
      state.writeOutcome({
        backupId: session.backupId,
        label: session.label,
        outcome,
        reason,
        at: new Date().toISOString(),
        startedAt: session.startedAt,
      });
    }
    // After a stop, the durable stopped record keeps the next begin out until `end` has handed the artifacts
    // over; the lock must not outlive the session, since the agent service's pid stays alive.
    state.unlock(session.backupId);
    resolveFinished(exitCode);
    return exitCode;
  };

  /** A request for another backup must leave this one as it is: the asker did not start it. */
  const refuseAnother = (backupId: string | undefined, op: 'end' | 'abort') => {
    if (backupId === undefined || backupId === session.backupId) return;
    throw new PreconditionError(
      `backup ${backupId} is not in progress here: backup ${session.backupId} is, and pgsnap ${op} ` +
        'leaves it as it is',
    );
  };

  const handle = async (request: ControlRequest): Promise<Record<string, unknown>> => {
    switch (request.op) {
      case 'status':
        return { ...session, elapsedMs: Date.now() - startedAt.getTime() };
      case 'abort':
        refuseAnother(request.backupId, 'abort');
        setImmediate(() => void finish('aborted', request.reason, 0));
        return { ...session, aborted: true, reason: request.reason };
      case 'end': {
        refuseAnother(request.backupId, 'end');
        if (session.state !== 'in-backup' || !client) {
          throw new PreconditionError(
            `backup ${session.backupId} is ${session.state}, not in backup mode yet; wait for begin to return`,
          );
        }
        session = { ...session, state: 'stopping' };
        state.writeSession(session);
        try {
          const stopped = await stop(client, session);
          state.writeStopped(stopped);
          setImmediate(() => void finish('stopped', `backup mode ended at ${stopped.stopLsn}`, 0));
          return { ...stopped };
        } catch (error) {
          const reason = `pg_backup_stop failed: ${messageOf(error)}`;
          setImmediate(() => void finish('lost', reason, 1));
          throw new BackupInvalidError(`backup ${session.backupId} is not valid: ${reason}`);
        }
      }
    }
  };

  const start = async () => {
    server = await listen(state.socketPath, handle);
    client = await connect({ applicationName: `pgsnap:${config.backupId}`, env: hooks.env });
    // An abort that came while connecting found nothing to close; in the agent service nothing else would.
    if (finishing) {
      await client.end().catch(() => {});
      server.close();
      throw new Error('the backup was aborted before it started');
    }
    client.on('end', () => {
      if (!finishing)
        void finish(
          'lost',
          'the backup session closed unexpectedly (server restart or terminated backend)',
          1,
        );
    });
    client.on('error', (error) => {
      if (!finishing) void finish('lost', `the backup session failed: ${error.message}`, 1);
    });
    // Preflight runs on the session that will hold the backup, so what it checks is what the backup gets.
    const { facts, findings } = await preflight(client);
    const failed = findings.filter((f) => !f.ok && f.severity === 'error');
    if (failed.length > 0) {
      throw new PreconditionError(
        `cannot start a backup:\n${failed.map((f) => `  - ${f.message}`).join('\n')}\n` +
          '(run pgsnap preflight for all checks)',
      );
    }
    for (const warning of findings.filter((f) => !f.ok)) hooks.log(`warning: ${warning.message}`);
    await hardenSession(client, facts.versionNum);
    // The backup starts when pg_backup_start is called (its START TIME), not when the holder did.
    const backupStartedAt = new Date().toISOString();
    const callStarted = performance.now();
    const startLsn = await startBackup(client, facts.versionNum, config.label, config.fast);
    const startCallMs = Math.round(performance.now() - callStarted);
    const timeline = await currentTimeline(client);
    session = {
      ...session,
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
    };
    state.writeSession(session);
    hooks.log(`backup ${config.backupId} started at ${startLsn} on backend ${facts.backendPid}`);

    const pidAtStart = facts.backendPid;
    heartbeat = setInterval(() => {
      if (finishing || session.state !== 'in-backup') return;
      client!.query<{ pid: number }>('SELECT pg_backend_pid() AS pid').then(
        ({ rows }) => {
          // A pooler in transaction mode can hand us another backend: the backup would be lost silently.
          if (rows[0]?.pid !== pidAtStart && !finishing) {
            void finish(
              'lost',
              `the session moved from backend ${pidAtStart} to ${rows[0]?.pid} (a pooler?)`,
              1,
            );
          }
        },
        (error: Error) => {
          if (!finishing) void finish('lost', `the backup session failed: ${error.message}`, 1);
        },
      );
    }, heartbeatMs);
    expiry = setTimeout(() => {
      if (session.state === 'in-backup') {
        void finish('expired', `the maximum backup duration of ${config.maxDurationMs / 1000}s passed`, 1);
      }
    }, config.maxDurationMs);
    hooks.report({ ok: true, session });
  };
  start().catch((error: Error) => {
    hooks.report({ ok: false, error: { name: error.name, message: error.message } });
    void finish('failed', error.message, 1);
  });
  return { finished, abort: (reason) => finish('aborted', reason, 1) };
}

/** Stops the backup and collects everything a restore needs, before anything can lose it. */
async function stop(client: Client, session: SessionRecord): Promise<StoppedRecord> {
  const callStarted = performance.now();
  const result = await stopBackup(client, session.versionNum!);
  const stopCallMs = Math.round(performance.now() - callStarted);
  const stoppedAt = new Date().toISOString();
  const label = parseBackupLabel(result.labelFile);
  const segmentSize = session.segmentSize!;
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
