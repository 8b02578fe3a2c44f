/**
 * A restore execution of the restore state machine: started by `pgsnap
 * restore start` (or a drill schedule) named after its restoreId, so that
 * starting the same restore twice starts it once.
 */
import { ExecutionAlreadyExists, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { existingExecution } from '../backup/execution.ts';
import { InvalidInputError } from '../errors.ts';
import { newRestoreId } from '../ids.ts';
import { parseWith } from '../parse.ts';
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
