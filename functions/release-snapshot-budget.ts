/**
 * Lambda for "Return the share of the pending-snapshot budget": once the
 * snapshots are completed, and on the one cleanup path (failed, aborted, or
 * never begun). Returning a share not held is a no-op.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDbBudgetStore } from '#domain/budget/dynamodb-store';
import { type BudgetStore, release } from '#domain/budget/semaphore';
import { backupIdSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import * as z from '#domain/zod';
import { budgetEnvironmentSchema } from './commons/budget-environment.ts';
import { logged } from './commons/logged.ts';

const eventSchema = z.object({ backupId: backupIdSchema });

/** The handler with its store given: DynamoDB in Lambda, memory in the local runs. */
export const releaseSnapshotBudgetHandler =
  (store: () => BudgetStore) =>
  async (event: unknown): Promise<{ held: number }> => {
    const env = parseWith(budgetEnvironmentSchema, process.env, 'the snapshot budget environment');
    const request = parseWith(eventSchema, event, 'the release-snapshot-budget event');
    const record = await release(store(), env.PGSNAP_PENDING_SNAPSHOTS_KEY, request.backupId);
    return { held: record.held };
  };

let dynamodb: DynamoDbBudgetStore | undefined;
export const handler = logged(
  'release-snapshot-budget',
  releaseSnapshotBudgetHandler(() => {
    dynamodb ??= new DynamoDbBudgetStore(new DynamoDBClient({}), process.env.PGSNAP_BUDGET_TABLE ?? '');
    return dynamodb;
  }),
);
