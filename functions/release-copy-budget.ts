/**
 * Lambda for "Return the share of the DR copy budget": once the copies are
 * completed, and on the failed copy's path (refused, failed, timed out).
 * Returning a share not held is a no-op. The freed units go to the oldest
 * waiters in the same write, and their tasks' tokens are answered
 * (domain/budget/queue.ts).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDbBudgetStore } from '#domain/budget/dynamodb-store';
import { giveBackAndWake, type TaskAnswers } from '#domain/budget/queue';
import type { BudgetStore } from '#domain/budget/semaphore';
import { backupIdSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import * as z from '#domain/zod';
import { copyBudgetEnvironmentSchema } from './commons/budget-environment.ts';
import { logged } from './commons/logged.ts';
import { lambdaAnswers } from './commons/task-answers.ts';

const eventSchema = z.object({ backupId: backupIdSchema });

/** The handler with its store given: DynamoDB in Lambda, memory in the local runs. */
export const releaseCopyBudgetHandler =
  (store: () => BudgetStore, answers: () => TaskAnswers = lambdaAnswers) =>
  async (event: unknown): Promise<{ held: number; woken: number; lost: number }> => {
    const env = parseWith(copyBudgetEnvironmentSchema, process.env, 'the copy budget environment');
    const request = parseWith(eventSchema, event, 'the release-copy-budget event');
    return giveBackAndWake(
      store(),
      answers(),
      { key: env.PGSNAP_COPIES_KEY, limit: env.PGSNAP_COPIES_BUDGET },
      request.backupId,
    );
  };

let dynamodb: DynamoDbBudgetStore | undefined;
export const handler = logged(
  'release-copy-budget',
  releaseCopyBudgetHandler(() => {
    dynamodb ??= new DynamoDbBudgetStore(new DynamoDBClient({}), process.env.PGSNAP_BUDGET_TABLE ?? '');
    return dynamodb;
  }),
);
