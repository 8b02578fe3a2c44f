/**
 * A restore execution of the restore state machine: started by `pgsnap
 * restore start` (or a drill schedule) named after its restoreId, so that
 * starting the same restore twice starts it once.
 */
import { ExecutionAlreadyExists, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { existingExecution } from '../backup/execution.ts';
import { InvalidInputError } from '../errors.ts';
import { backupIdFrom, newRestoreId } from '../ids.ts';
import { parseWith } from '../parse.ts';
import * as z from '../zod.ts';
import { type RestoreRequestInput, restoreRequestSchema } from './request.ts';

export interface StartedRestore {
  restoreId: string;
  executionArn: string;
}

export async function startRestoreExecution(
  sfn: SFNClient,
  request: { stateMachineArn: string; input: RestoreRequestInput },
): Promise<StartedRestore> {
  const input = parseWith(restoreRequestSchema, request.input, 'the restore request');
  const restoreId = input.restoreId ?? newRestoreId();
  try {
    const started = await sfn.send(
      new StartExecutionCommand({
        stateMachineArn: request.stateMachineArn,
        name: restoreId,
        input: JSON.stringify({ ...input, restoreId }),
      }),
    );
    return { restoreId, executionArn: started.executionArn! };
  } catch (error) {
    if (!(error instanceof ExecutionAlreadyExists)) throw error;
    const given = { ...input, restoreId };
    const existing = await existingExecution(sfn, request.stateMachineArn, restoreId, given);
    if (existing?.sameInput && existing.status === 'RUNNING')
      return { restoreId, executionArn: existing.arn };
    throw new InvalidInputError(
      existing?.sameInput
        ? `restore ${restoreId} already ran: its execution ${existing.status}${existing.stoppedAt ? ` at ${existing.stoppedAt}` : ''} ` +
            `(a restoreId names one execution); leave --restore-id out for a new one, pgsnap restores show ${restoreId} for that one`
        : `restore ${restoreId} was already started with another input; leave --restore-id out for a new one`,
      { cause: error },
    );
  }
}

/** What a drill schedule sends the start-drill Lambda: the restore request and the time it was due. */
export const scheduledDrillSchema = z.strictObject({
  ...restoreRequestSchema.shape,
  /** The time the schedule was due (not when Scheduler delivered it, which the flexible window moves). */
  scheduledTime: z.iso.datetime({ offset: true }),
});

export interface ScheduledDrill extends StartedRestore {
  /** True when this delivery found its execution already started: Scheduler delivers at least once. */
  alreadyStarted: boolean;
}

/** The restoreId of a scheduled drill: `r-`, the due time and a digest of the cluster's name (`r-20261206T060000Z-9f8e7d`). */
export function scheduledDrillId(cluster: string, scheduledTime: Date): string {
  return `r-${backupIdFrom(scheduledTime, `drill ${cluster}`)}`;
}

/**
 * Starts the drill a schedule is due for, in an execution named after the
 * cluster and the due time: a second delivery of the same schedule (Scheduler
 * delivers at least once) is refused by Step Functions itself
 * (ExecutionAlreadyExists), with no listing of executions, and is no error.
 */
export async function startScheduledDrill(
  sfn: SFNClient,
  request: { stateMachineArn: string; event: unknown },
): Promise<ScheduledDrill> {
  const { scheduledTime, ...given } = parseWith(scheduledDrillSchema, request.event, 'the scheduled drill');
  const restoreId = scheduledDrillId(given.cluster, new Date(scheduledTime));
  const executionArn = `${request.stateMachineArn.replace(':stateMachine:', ':execution:')}:${restoreId}`;
  const input = parseWith(restoreRequestSchema, { ...given, restoreId }, 'the restore request');
  try {
    const started = await sfn.send(
      new StartExecutionCommand({
        stateMachineArn: request.stateMachineArn,
        name: restoreId,
        input: JSON.stringify(input),
      }),
    );
    return { restoreId, executionArn: started.executionArn ?? executionArn, alreadyStarted: false };
  } catch (error) {
    if (error instanceof ExecutionAlreadyExists) return { restoreId, executionArn, alreadyStarted: true };
    throw error;
  }
}
