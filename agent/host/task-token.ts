/**
 * `--task-token`: the agent answers Step Functions itself. While the command
 * runs it sends SendTaskHeartbeat (a spread checkpoint or the archive wait can
 * take a while) three times per `--heartbeat-seconds`, the Task state's
 * HeartbeatSeconds, which the SSM document passes on: one lost or late
 * heartbeat does not time the task out. Then SendTaskSuccess with the command's JSON
 * document, or SendTaskFailure with the error's name (which the state
 * machine's Catch matches) and message. The state machine never polls the host.
 */
import { readFileSync } from 'node:fs';
import type { SFNClient } from '@aws-sdk/client-sfn';
import { messageOf, UsageError } from '#domain/errors';
import { awsClientConfig } from './aws-timeouts.ts';
import { defaultHeartbeatMs, taskTokenVariable } from './settings.ts';

export const taskTokenFlag = {
  'task-token': { type: 'string' },
  'heartbeat-seconds': { type: 'string' },
  'task-token-file': { type: 'string' },
} as const;

/**
 * How often to send SendTaskHeartbeat for a Task state whose HeartbeatSeconds
 * is `heartbeatSeconds` (the --heartbeat-seconds flag): a third of it.
 */
export function heartbeatIntervalMs(heartbeatSeconds: string | undefined): number {
  if (heartbeatSeconds === undefined) return defaultHeartbeatMs;
  if (!/^[1-9][0-9]{0,7}$/.test(heartbeatSeconds)) {
    throw new UsageError(
      `--heartbeat-seconds ${heartbeatSeconds}: give the Task state's HeartbeatSeconds, a whole number of seconds`,
    );
  }
  return Math.floor((Number(heartbeatSeconds) * 1000) / 3);
}

/**
 * The task token, from PGSNAP_TASK_TOKEN, --task-token-file or --task-token.
 * A command line is readable by every local user (ps, /proc/PID/cmdline),
 * an environment only by the process's own user and root
 * (/proc/PID/environ is mode 0400): the SSM document uses the variable.
 * --task-token stays for compatibility. The variable is removed from this
 * process's environment once read, so that nothing pgsnap starts (a
 * snapshot command, a server run as postgres) inherits it.
 */
export function taskTokenOf(
  values: { 'task-token'?: string; 'task-token-file'?: string },
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const fromEnv = env[taskTokenVariable];
  delete env[taskTokenVariable];
  const given = [values['task-token'], values['task-token-file']].filter((v) => v !== undefined);
  if (given.length > 1) throw new UsageError('Cannot specify both --task-token and --task-token-file');
  if (values['task-token-file'] !== undefined) {
    const token = readFileSync(values['task-token-file'], 'utf8').trim();
    if (!token) throw new UsageError(`--task-token-file ${values['task-token-file']} is empty`);
    return token;
  }
  return values['task-token'] ?? (fromEnv || undefined);
}

/** Step Functions' limits on SendTaskFailure's fields. */
const maxErrorLength = 256;
const maxCauseLength = 32_768;

export interface TaskTokenOptions {
  progress: (message: string) => void;
  /** How often to heartbeat (heartbeatIntervalMs); every minute when absent. */
  heartbeatMs?: number;
  /** For tests; by default a client for the instance's region and credentials. */
  client?: SFNClient;
}

/**
 * Runs `work`; with a task token, reports its outcome to Step Functions.
 * The command's own outcome (result or error, and so its exit code) is kept.
 */
export async function answeringStepFunctions<T>(
  taskToken: string | undefined,
  work: () => Promise<T>,
  document: (result: T) => Record<string, unknown>,
  options: TaskTokenOptions,
): Promise<T> {
  if (taskToken === undefined) return work();
  // Loaded on demand: most commands never talk to Step Functions.
  const sfn = await import('./step-functions.ts');
  const client = options.client ?? new sfn.SFNClient(awsClientConfig());
  const heartbeat = setInterval(() => {
    client.send(new sfn.SendTaskHeartbeatCommand({ taskToken })).catch((error: unknown) => {
      options.progress(`Step Functions did not take the heartbeat: ${messageOf(error)}`);
    });
  }, options.heartbeatMs ?? defaultHeartbeatMs);
  try {
    let result: T;
    try {
      result = await work();
    } catch (error) {
      clearInterval(heartbeat);
      const name = error instanceof Error ? error.name : 'Error';
      await client
        .send(
          new sfn.SendTaskFailureCommand({
            taskToken,
            error: name.slice(0, maxErrorLength),
            cause: messageOf(error).slice(0, maxCauseLength),
          }),
        )
        .catch((reportError: unknown) => {
          options.progress(`could not report the failure to Step Functions: ${messageOf(reportError)}`);
        });
      throw error;
    }
    clearInterval(heartbeat);
    await client.send(
      new sfn.SendTaskSuccessCommand({ taskToken, output: JSON.stringify(document(result)) }),
    );
    return result;
  } finally {
    clearInterval(heartbeat);
    // Its keep-alive sockets would hold the command open.
    if (!options.client) client.destroy();
  }
}
