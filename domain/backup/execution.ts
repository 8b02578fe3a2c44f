/**
 * A backup execution of the state machine: its documented input, its backupId
 * (its name, or derived from its name and start time), how one is started, and
 * whether another one of the same cluster is running. Shared by `pgsnap backup
 * start`, the schedule's Lambda and the state machine's first step.
 */

import { isDeepStrictEqual } from 'node:util';
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  GetExecutionHistoryCommand,
  type SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { InvalidInputError } from '../errors.ts';
import { backupIdFrom, isBackupId, newBackupId, validateBackupId, validateClusterName } from '../ids.ts';
import { parseWith } from '../parse.ts';
import * as z from '../zod.ts';
import { validateLabel } from './input.ts';

function checkedBy(validate: (value: string) => string) {
  return z.string().check(
    z.superRefine((value, ctx) => {
      try {
        validate(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
      }
    }),
  );
}

/**
 * The state machine's input. Start an execution with it from the console, the
 * CLI or a schedule; any execution name will do (see backupIdOfExecution).
 */
export const executionInputSchema = z.strictObject({
  /** The cluster to back up, as named in the configuration (`orders-db`). */
  cluster: checkedBy(validateClusterName),
  /** Written into backup_label; defaults to the trigger (`on-demand`, `scheduled`). */
  label: z.optional(checkedBy(validateLabel)),
  /** Immediate checkpoint instead of a spread one; defaults to the cluster's setting. */
  fast: z.optional(z.boolean()),
  /** Who started it, for the record. */
  trigger: z._default(z.enum(['console', 'cli', 'schedule']), 'console'),
});

export type ExecutionInput = z.output<typeof executionInputSchema>;

export function parseExecutionInput(value: unknown): ExecutionInput {
  return parseWith(executionInputSchema, value, 'the backup request');
}

/**
 * The backupId of a backup execution. `pgsnap backup start` and the schedules
 * name the execution after a new backupId, so that starting the same backup
 * twice starts it once; that name is the backupId. Any other name (the
 * console's default, a random UUID, or one the operator typed: Step Functions
 * allows 1 to 80 characters, non-ASCII ones too, but no white space, brackets,
 * wildcards, control characters or any of " # % \ ^ | ~ ` $ & , ; : /, per
 * the StartExecution API reference) gets a backupId derived from the
 * execution: its start time, then a hash of its name. Both are fixed for the
 * life of the execution, so a retried first step, or another execution
 * looking at this one while it runs, finds the same backupId; and ids still
 * sort by time.
 */
export function backupIdOfExecution(execution: { name: string; startTime: Date }): string {
  if (isBackupId(execution.name)) return execution.name;
  if (Number.isNaN(execution.startTime.getTime())) {
    throw new InvalidInputError(
      `execution ${JSON.stringify(execution.name)} has no valid start time, so no backupId can be derived from it`,
    );
  }
  return backupIdFrom(execution.startTime, execution.name);
}

export interface StartedBackup {
  backupId: string;
  executionArn: string;
}

/** Starts a backup execution named after a new (or given) backupId; repeating a start with the same id is harmless. */
export async function startBackupExecution(
  sfn: SFNClient,
  request: { stateMachineArn: string; input: unknown; backupId?: string },
): Promise<StartedBackup> {
  const input = parseExecutionInput(request.input);
  const backupId = request.backupId ? validateBackupId(request.backupId) : newBackupId();
  try {
    const started = await sfn.send(
      new StartExecutionCommand({
        stateMachineArn: request.stateMachineArn,
        name: backupId,
        input: JSON.stringify(input),
      }),
    );
    return { backupId, executionArn: started.executionArn! };
  } catch (error) {
    if (!(error instanceof ExecutionAlreadyExists)) throw error;
    const existing = await existingExecution(sfn, request.stateMachineArn, backupId, input);
    if (existing?.sameInput && existing.status === 'RUNNING') return { backupId, executionArn: existing.arn };
    throw new InvalidInputError(
      existing?.sameInput
        ? `backup ${backupId} already ran: its execution ${existing.status}${existing.stoppedAt ? ` at ${existing.stoppedAt}` : ''} ` +
            `(a backupId names one execution); leave --backup-id out for a new backup, pgsnap backups show ${backupId} for that one`
        : `backup ${backupId} was already started with another input; pick a new backupId or leave it out`,
      { cause: error },
    );
  }
}

/**
 * The execution named `name` that StartExecution says exists: its status, when it stopped, and whether its
 * input is `input`. Step Functions answers a repeated start with the same name and input with the running
 * execution, but with ExecutionAlreadyExists once that execution has stopped, as for another input (names are
 * unique for 90 days): only its description tells the two apart. Undefined when it cannot be read.
 */
export async function existingExecution(
  sfn: SFNClient,
  stateMachineArn: string,
  name: string,
  input: unknown,
): Promise<{ arn: string; status: string; stoppedAt?: string; sameInput: boolean } | undefined> {
  const arn = `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
  try {
    const described = await sfn.send(new DescribeExecutionCommand({ executionArn: arn }));
    if (!described?.status) return undefined;
    return {
      arn,
      status: described.status,
      ...(described.stopDate ? { stoppedAt: described.stopDate.toISOString() } : {}),
      sameInput: isDeepStrictEqual(JSON.parse(described.input ?? 'null'), JSON.parse(JSON.stringify(input))),
    };
  } catch {
    return undefined;
  }
}

/** What a schedule passes to the start-backup Lambda: the request, and Scheduler's `<aws.scheduler.scheduled-time>`. */
export const scheduledStartSchema = z.strictObject({
  ...executionInputSchema.shape,
  /** The time the schedule was due (not when Scheduler delivered it, which the flexible window moves). */
  scheduledTime: z.iso.datetime({ offset: true }),
});

export interface ScheduledBackup extends StartedBackup {
  /** True when this delivery found its execution already started: Scheduler delivers at least once. */
  alreadyStarted: boolean;
}

/**
 * Starts the backup a schedule is due for, in an execution named after the
 * cluster and the scheduled time (backupIdFrom), so that a second delivery of
 * the same schedule, or a second schedule of the cluster due at the same
 * moment, is refused by Step Functions itself (ExecutionAlreadyExists, or the
 * running execution's ARN for the same name and input, per the StartExecution
 * API reference): one call, no listing of executions. Whether another backup
 * of the cluster runs is the host's to answer (BackupInProgressError at begin).
 */
export async function startScheduledBackup(
  sfn: SFNClient,
  request: { stateMachineArn: string; event: unknown },
): Promise<ScheduledBackup> {
  const { scheduledTime, ...input } = parseWith(scheduledStartSchema, request.event, 'the scheduled start');
  const backupId = backupIdFrom(new Date(scheduledTime), input.cluster);
  const executionArn = `${request.stateMachineArn.replace(':stateMachine:', ':execution:')}:${backupId}`;
  try {
    const started = await sfn.send(
      new StartExecutionCommand({
        stateMachineArn: request.stateMachineArn,
        name: backupId,
        input: JSON.stringify(parseExecutionInput(input)),
      }),
    );
    return { backupId, executionArn: started.executionArn ?? executionArn, alreadyStarted: false };
  } catch (error) {
    if (error instanceof ExecutionAlreadyExists) return { backupId, executionArn, alreadyStarted: true };
    throw error;
  }
}

export interface ExecutionOutcome {
  status: 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';
  /** The execution's output when it succeeded. */
  output?: unknown;
  /** The Fail state's error and cause otherwise. */
  error?: string;
  cause?: string;
}

const ends: Record<string, ExecutionOutcome['status']> = {
  ExecutionSucceeded: 'SUCCEEDED',
  ExecutionFailed: 'FAILED',
  ExecutionTimedOut: 'TIMED_OUT',
  ExecutionAborted: 'ABORTED',
};

/**
 * Follows an execution until it ends, reporting each state it enters. Polls
 * the history, from every 2 s up to every 15 s: a backup spends most of its
 * time waiting for snapshots, and a person watching wants the first steps
 * quickly.
 */
export async function followExecution(
  sfn: SFNClient,
  executionArn: string,
  options: { progress: (message: string) => void; sleep?: (ms: number) => Promise<void> },
): Promise<ExecutionOutcome> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  let seen = 0;
  for (let delayMs = 2_000; ; delayMs = Math.min(15_000, delayMs * 1.5)) {
    let nextToken: string | undefined;
    do {
      const page = await sfn.send(
        new GetExecutionHistoryCommand({
          executionArn,
          maxResults: 1000,
          ...(nextToken ? { nextToken } : {}),
        }),
      );
      for (const event of page.events ?? []) {
        if ((event.id ?? 0) <= seen) continue;
        seen = event.id ?? seen;
        const entered = event.stateEnteredEventDetails?.name;
        if (entered && event.type !== 'ChoiceStateEntered') options.progress(entered);
        const status = ends[event.type ?? ''];
        if (!status) continue;
        const failed = event.executionFailedEventDetails;
        const output = event.executionSucceededEventDetails?.output;
        return {
          status,
          ...(output !== undefined ? { output: JSON.parse(output) } : {}),
          ...(failed?.error !== undefined ? { error: failed.error } : {}),
          ...(failed?.cause !== undefined ? { cause: failed.cause } : {}),
        };
      }
      nextToken = page.nextToken;
    } while (nextToken);
    await sleep(delayMs);
  }
}
