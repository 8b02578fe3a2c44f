/** `pgsnap begin`: start the holder and return once the server is in backup mode. */
import { once } from 'node:events';
import { openSync } from 'node:fs';
import {
  formatDuration,
  newBackupId,
  parseDuration,
  validateBackupId,
  validateLabel,
} from '#domain/backup/input';
import { ConnectionError, messageOf, PreconditionError, UsageError } from '#domain/errors';
import { parse } from '../cli/args.ts';
import { type Context, createContext } from '../cli/context.ts';
import { table } from '../cli/output.ts';
import { answeringStepFunctions, taskTokenFlag, taskTokenOf } from '../cli/task-token.ts';
import { printUsage } from '../cli/usage.ts';
import { recordStarted } from '../session/catalog.ts';
import { maxDurationLimitMs, type SessionConfig } from '../session/config.ts';
import { request } from '../session/control.ts';
import { inspect } from '../session/inspect.ts';
import type { SessionReport } from '../session/session.ts';
import { agentSocketPath, type SessionRecord } from '../session/state.ts';
import type { Discovery } from '../volumes/block-devices.ts';
import { abort } from './abort.ts';

export const beginUsage = `pgsnap begin --label L [--fast] [--max-duration 1h] [--backup-id ID] [--volumes] [--task-token-file F] [--json]

Starts a non-exclusive backup and returns once PostgreSQL is in backup mode.
The session is held by the agent service (pgsnap agent) when it runs, and
otherwise by a background process of its own (the holder). End it with
pgsnap end.

With a repository (--repo and --cluster, or PGSNAP_REPO and PGSNAP_CLUSTER),
the backup is catalogued there as started; a repository that belongs to
another cluster, or cannot be reached, aborts the backup at once.`;

export interface BeginOptions {
  label: string;
  fast: boolean;
  maxDurationMs: number;
  backupId?: string;
}

export const defaultMaxDurationMs = 3_600_000;

/**
 * Starts the holder and waits until the server is in backup mode. Aborting
 * `signal` (an interrupted `pgsnap run`) stops the holder, and begin rejects
 * once the holder is gone.
 */
export async function begin(
  ctx: Context,
  options: BeginOptions,
  signal?: AbortSignal,
): Promise<SessionRecord> {
  const backupId = options.backupId ?? newBackupId();
  const { state } = ctx;

  const current = await inspect(state);
  if (current.kind === 'active') {
    const s = current.session;
    throw new PreconditionError(
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
    throw new PreconditionError(
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
  };
  let session: SessionRecord;
  try {
    session = (await askAgentService(ctx, config, signal)) ?? (await spawnHolder(ctx, config, signal));
  } catch (error) {
    // The holder records its own failure and releases the lock; this covers a holder that never ran.
    if (state.readLock()?.pid === process.pid) state.unlock();
    throw error;
  }
  if (ctx.repository) {
    try {
      await recordStarted(ctx.repository, session);
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
): Promise<SessionRecord | undefined> {
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
    return (answer.result as { session: SessionRecord }).session;
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
): Promise<SessionRecord> {
  // Loaded here: with the agent service running, begin never spawns anything.
  const { spawn } = await import('node:child_process');
  const log = openSync(ctx.state.logPath, 'a', 0o600);
  const child = spawn(
    process.execPath,
    [...process.execArgv, process.argv[1]!, '__holder', JSON.stringify(config)],
    {
      detached: true,
      stdio: ['ignore', log, log, 'pipe'],
      env: process.env,
    },
  );
  const stopProgress = reportWaiting(ctx, config);
  // The holder aborts on SIGTERM, whatever it is doing.
  const stopHolder = () => child.kill('SIGTERM');
  signal?.addEventListener('abort', stopHolder, { once: true });
  return new Promise<SessionRecord>((resolve, reject) => {
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

/** Rebuilds the session's error with its name, so the exit code and Step Functions see the same one. */
function holderError(error: { name: string; message: string } | undefined): Error {
  const message = error?.message ?? 'the holder gave no reason';
  if (error?.name === 'PreconditionError') return new PreconditionError(message);
  if (error?.name === 'ConnectionError') return new ConnectionError(message);
  const rebuilt = new Error(`the backup did not start: ${message}`);
  rebuilt.name = error?.name ?? 'Error';
  return rebuilt;
}

export function describeSession(session: SessionRecord): Array<[string, unknown]> {
  return [
    ['backupId', session.backupId],
    ['label', session.label],
    ['startLsn', session.startLsn],
    ['startWalFile', session.startWalFile],
    ['timeline', session.timeline],
    ['systemIdentifier', session.systemIdentifier],
    ['serverVersion', session.serverVersion],
    ['startedAt', session.startedAt],
    [
      'backupFrom',
      session.fromStandby === undefined ? undefined : session.fromStandby ? 'standby' : 'primary',
    ],
    ['holderPid', session.holderPid],
    ['serverPid', session.serverPid],
    ['expiresAt', session.expiresAt],
  ];
}

export function beginDocument(session: SessionRecord): Record<string, unknown> {
  return Object.fromEntries(describeSession(session).filter(([, value]) => value !== undefined));
}

function parseMaxDuration(text: string): number {
  const millis = parseDuration(text, '--max-duration');
  if (millis > maxDurationLimitMs) {
    throw new UsageError(
      `--max-duration ${text} is longer than pgsnap can time (at most ${formatDuration(maxDurationLimitMs)}, ` +
        'about 24 days); a backup is held for the minutes its snapshots take: give, for example, 1h or 6h',
    );
  }
  return millis;
}

export function parseBeginOptions(values: {
  label?: string;
  fast?: boolean;
  'max-duration'?: string;
  'backup-id'?: string;
}): BeginOptions {
  return {
    label: validateLabel(values.label ?? ''),
    fast: values.fast ?? false,
    maxDurationMs: values['max-duration'] ? parseMaxDuration(values['max-duration']) : defaultMaxDurationMs,
    ...(values['backup-id'] ? { backupId: validateBackupId(values['backup-id']) } : {}),
  };
}

export const beginFlags = {
  label: { type: 'string' },
  fast: { type: 'boolean', default: false },
  'max-duration': { type: 'string' },
  'backup-id': { type: 'string' },
} as const;

export async function beginCommand(args: string[]): Promise<number> {
  const { values } = parse('begin', args, {
    ...beginFlags,
    ...taskTokenFlag,
    volumes: { type: 'boolean', default: false },
  });
  if (values.help) return printUsage(beginUsage);
  const ctx = createContext(values);
  // --volumes: also say which EBS volumes hold the cluster, for the state machine to snapshot.
  let volumes: Pick<Discovery, 'volumes' | 'problems'> | undefined;
  const document = (session: SessionRecord) => ({ ...beginDocument(session), ...volumes });
  const session = await answeringStepFunctions(
    taskTokenOf(values),
    async () => {
      if (values.label === undefined) {
        throw new UsageError('pgsnap begin: --label is required, e.g. pgsnap begin --label nightly');
      }
      const started = await begin(ctx, parseBeginOptions(values));
      if (values.volumes) {
        // The backup has started: a discovery that fails is reported, not allowed to fail begin.
        const { discover } = await import('./discover.ts');
        volumes = await discover().then(
          ({ volumes: found, problems }) => ({ volumes: found, problems }),
          (error: unknown) => ({ volumes: [], problems: [`pgsnap discover failed: ${messageOf(error)}`] }),
        );
      }
      return started;
    },
    document,
    ctx.out,
  );
  ctx.out.result(document(session), table(describeSession(session)));
  return 0;
}
