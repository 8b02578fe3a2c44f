/**
 * Lambda for "Return the share of the DR copy budget": once the copies are
 * completed, and on the failed copy's path (refused, failed, timed out).
 * Returning a share not held is a no-op.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDbBudgetStore } from '#domain/budget/dynamodb-store';
import { type BudgetStore, release } from '#domain/budget/semaphore';
import { backupIdSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import * as z from '#domain/zod';
import { copyBudgetEnvironmentSchema } from './commons/budget-environment.ts';
import { logged } from './commons/logged.ts';

const eventSchema = z.object({ backupId: backupIdSchema });

/** The handler with its store given: DynamoDB in Lambda, memory in the local runs. */
export const releaseCopyBudgetHandler =
  (store: () => BudgetStore) =>
  async (event: unknown): Promise<{ held: number }> => {
    const env = parseWith(copyBudgetEnvironmentSchema, process.env, 'the copy budget environment');
    const request = parseWith(eventSchema, event, 'the release-copy-budget event');
    const record = await release(store(), env.PGSNAP_COPIES_KEY, request.backupId);
    return { held: record.held };
  };

let dynamodb: DynamoDbBudgetStore | undefined;
export const handler = logged(
  'release-copy-budget',
  releaseCopyBudgetHandler(() => {
    dynamodb ??= new DynamoDbBudgetStore(new DynamoDBClient({}), process.env.PGSNAP_BUDGET_TABLE ?? '');
    return dynamodb;
  }),
);
