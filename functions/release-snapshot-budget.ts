/**
 * Lambda for "Return the share of the pending-snapshot budget": once the
 * snapshots are completed, and on the one cleanup path (failed, aborted, or
 * never begun). Returning a share not held is a no-op.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDbBudgetStore } from '#domain/budget/dynamodb-store';
import { giveBackAndWake, type TaskAnswers } from '#domain/budget/queue';
import type { BudgetStore } from '#domain/budget/semaphore';
import { backupIdSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import * as z from '#domain/zod';
import { budgetEnvironmentSchema } from './commons/budget-environment.ts';
import { logged } from './commons/logged.ts';
import { lambdaAnswers } from './commons/task-answers.ts';

const eventSchema = z.object({ backupId: backupIdSchema });

/** The handler with its store given: DynamoDB in Lambda, memory in the local runs. */
export const releaseSnapshotBudgetHandler =
  (store: () => BudgetStore, answers: () => TaskAnswers = lambdaAnswers) =>
  async (event: unknown): Promise<{ held: number; woken: number; lost: number }> => {
    const env = parseWith(budgetEnvironmentSchema, process.env, 'the snapshot budget environment');
    const request = parseWith(eventSchema, event, 'the release-snapshot-budget event');
    return giveBackAndWake(
      store(),
      answers(),
      { key: env.PGSNAP_PENDING_SNAPSHOTS_KEY, limit: env.PGSNAP_PENDING_SNAPSHOTS_BUDGET },
      request.backupId,
    );
  };

let dynamodb: DynamoDbBudgetStore | undefined;
export const handler = logged(
  'release-snapshot-budget',
  releaseSnapshotBudgetHandler(() => {
    dynamodb ??= new DynamoDbBudgetStore(new DynamoDBClient({}), process.env.PGSNAP_BUDGET_TABLE ?? '');
    return dynamodb;
  }),
);
