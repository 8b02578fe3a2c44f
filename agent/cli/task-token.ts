/**
 * `--task-token`: the agent answers Step Functions itself. While the command
 * runs it sends SendTaskHeartbeat (a spread checkpoint or the archive wait can
 * take a while) three times per `--heartbeat-seconds`, the Task state's
 * HeartbeatSeconds, which the SSM document passes on: one lost or late
 * heartbeat does not time the task out. Then SendTaskSuccess with the command's JSON
 * document, or SendTaskFailure with the error's name (which the state
 * machine's Catch matches) and message. The state machine never polls the host.
 */
import type { SFNClient } from '@aws-sdk/client-sfn';
import { messageOf, UsageError } from '#domain/errors';

export const taskTokenFlag = {
  'task-token': { type: 'string' },
  'heartbeat-seconds': { type: 'string' },
} as const;

/** Without --heartbeat-seconds (a task token given by hand), a heartbeat every minute. */
const defaultHeartbeatMs = 60_000;

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
  const client = options.client ?? new sfn.SFNClient({});
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
