/**
 * Beginning a backup: the session is asked of the agent service when one runs
 * here, and is otherwise held by a holder process started for it; begin
 * returns once the server is in backup mode, and the backup is catalogued.
 */
import { once } from 'node:events';
import { openSync } from 'node:fs';
import { formatDuration } from '#domain/backup/input';
import { BackupInProgressError, ConnectionError, messageOf, PreconditionError } from '#domain/errors';
import { newBackupId } from '#domain/ids';
import type { Context } from '../host/context.ts';
import { selfSpawn } from '../host/self.ts';
import { agentSocketPath, type BackupSession } from '../host/state.ts';
import { abort } from './abort.ts';
import { recordStarted } from './catalog.ts';
import type { SessionConfig } from './config.ts';
import { answerError, request } from './control.ts';
import { inspect } from './inspect.ts';
import type { SessionReport } from './session.ts';

export interface BeginOptions {
  label: string;
  fast: boolean;
  maxDurationMs: number;
  backupId?: string;
  /** The `pgsnap run` the backup belongs to: the session aborts once that process is gone. */
  ownerPid?: number;
}

/**
 * Starts the holder and waits until the server is in backup mode. Aborting
 * `signal` (an interrupted `pgsnap run`) stops the holder, and begin rejects
 * once the holder is gone.
 */
export async function begin(
  ctx: Context,
  options: BeginOptions,
  signal?: AbortSignal,
): Promise<BackupSession> {
  const backupId = options.backupId ?? newBackupId();
  const { state } = ctx;

  const current = await inspect(state);
  if (current.kind === 'active') {
    const s = current.session;
    throw new BackupInProgressError(
      `backup ${s.backupId} (label ${JSON.stringify(s.label)}) is in progress here since ${s.startedAt}, ` +
        `held by pid ${s.holderPid}; end it with pgsnap end or pgsnap abort before starting another`,
    );
  }
  if (current.kind === 'stopped') {
    throw new PreconditionError(
      `backup ${current.stopped.backupId} was stopped but pgsnap end did not finish handing over its artifacts; ` +
        'run pgsnap end to finish it (or pgsnap abort to discard it) before starting another',
    );
  }

  signal?.throwIfAborted();
  if (!state.tryLock(backupId)) {
    throw new BackupInProgressError(
      `another pgsnap begin for this cluster is starting right now (${JSON.stringify(state.readLock())}); try again`,
    );
  }
  const config: SessionConfig = {
    stateRoot: ctx.stateRoot,
    key: state.key,
    backupId,
    label: options.label,
    fast: options.fast,
    maxDurationMs: options.maxDurationMs,
    ...(options.ownerPid !== undefined ? { ownerPid: options.ownerPid } : {}),
  };
  let session: BackupSession;
  try {
    session = (await askAgentService(ctx, config, signal)) ?? (await spawnHolder(ctx, config, signal));
  } catch (error) {
    // The holder records its own failure and releases the lock; this covers a holder that never ran.
    if (state.readLock()?.pid === process.pid) state.unlock();
    throw error;
  }
  if (ctx.repository) {
    try {
      await recordStarted(ctx.repository, session, { manifest: !ctx.proposeOnly });
    } catch (error) {
      // A backup the repository cannot catalogue (another cluster's name, unreachable) is not kept running.
      await abort(ctx, `the repository did not record the backup: ${messageOf(error)}`, backupId).catch(
        () => {},
      );
      throw error;
    }
  }
  return session;
}

/** Progress while pg_backup_start waits for its checkpoint; returns what stops it. */
function reportWaiting(ctx: Context, config: SessionConfig): () => void {
  const started = Date.now();
  const progress = setInterval(() => {
    ctx.out.progress(
      `waiting for pg_backup_start (${formatDuration(Date.now() - started)})` +
        (config.fast
          ? ''
          : ': the checkpoint is spread over checkpoint_completion_target; --fast forces it now'),
    );
  }, 5_000);
  return () => clearInterval(progress);
}

/** The libpq settings the session must connect with: begin's own, as a holder would inherit them. */
function libpqEnv(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      (entry): entry is [string, string] =>
        entry[1] !== undefined && (entry[0].startsWith('PG') || entry[0] === 'HOME' || entry[0] === 'USER'),
    ),
  );
}

/**
 * Asks the agent service to hold the session; undefined when none runs here.
 * The answer comes once the server is in backup mode, or once a session that
 * failed to start is closed. Aborting `signal` aborts the session.
 */
async function askAgentService(
  ctx: Context,
  config: SessionConfig,
  signal?: AbortSignal,
): Promise<BackupSession | undefined> {
  const stopProgress = reportWaiting(ctx, config);
  let settled = false;
  const abortSession = async () => {
    // The session listens on its socket from its first moment on; until then, ask again.
    while (!settled) {
      const answer = await request(ctx.state.socketPath, {
        op: 'abort',
        reason: `begin was interrupted (${messageOf(signal?.reason)})`,
        backupId: config.backupId,
      }).catch(() => undefined);
      if (answer) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const onAbort = () => void abortSession();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const answer = await request(agentSocketPath(ctx.stateRoot), { op: 'begin', config, env: libpqEnv() });
    if (!answer) return undefined;
    if (signal?.aborted) {
      // Backup mode started before the abort reached the session: end it, and return once it is closed.
      if (answer.ok) {
        await abort(ctx, `begin was interrupted (${messageOf(signal.reason)})`, config.backupId).catch(
          () => {},
        );
      }
      throw signal.reason;
    }
    if (!answer.ok) throw holderError(answer.error);
    return (answer.result as { session: BackupSession }).session;
  } finally {
    settled = true;
    stopProgress();
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * Starts the holder detached (setsid), so killing begin's process group does
 * not reach it, and waits for its one-line report on fd 3.
 */
async function spawnHolder(
  ctx: Context,
  config: SessionConfig,
  signal?: AbortSignal,
): Promise<BackupSession> {
  // Loaded here: with the agent service running, begin never spawns anything.
  const { spawn } = await import('node:child_process');
  const log = openSync(ctx.state.logPath, 'a', 0o600);
  const child = spawn(...selfSpawn(['__holder', JSON.stringify(config)]), {
    detached: true,
    stdio: ['ignore', log, log, 'pipe'],
    env: process.env,
  });
  const stopProgress = reportWaiting(ctx, config);
  // The holder aborts on SIGTERM, whatever it is doing.
  const stopHolder = () => child.kill('SIGTERM');
  signal?.addEventListener('abort', stopHolder, { once: true });
  return new Promise<BackupSession>((resolve, reject) => {
    let text = '';
    const channel = child.stdio[3] as NodeJS.ReadableStream;
    channel.setEncoding('utf8');
    channel.on('data', (chunk: string) => {
      text += chunk;
    });
    const settle = async () => {
      stopProgress();
      signal?.removeEventListener('abort', stopHolder);
      (channel as unknown as { destroy(): void }).destroy();
      if (signal?.aborted) {
        // Return only once the holder has closed its session, so that nothing is left in backup mode.
        if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
        reject(signal.reason);
        return;
      }
      child.unref();
      let message: SessionReport;
      try {
        message = JSON.parse(text);
      } catch {
        reject(new Error(`the holder exited without starting the backup; see ${ctx.state.logPath}`));
        return;
      }
      if (message.ok) resolve(message.session);
      else reject(holderError(message.error));
    };
    channel.on('end', () => void settle());
    child.on('error', (error) => {
      stopProgress();
      reject(error);
    });
  });
}

/**
 * The session's error as it came (answerError keeps its name, which the exit code and Step Functions
 * match on), said to be begin's when it is not one the operator acts on as it is.
 */
function holderError(error: { name: string; message: string }): Error {
  const rebuilt = answerError(error);
  if (!(rebuilt instanceof PreconditionError || rebuilt instanceof ConnectionError)) {
    rebuilt.message = `the backup did not start: ${rebuilt.message}`;
  }
  return rebuilt;
}
