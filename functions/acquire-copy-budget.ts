/**
 * Lambda for "Take a share of the DR copy budget", before CopySnapshot: one
 * unit per snapshot to copy, in the queue of the destination Region's copies
 * (EBS runs at most 20 at once per destination Region, not adjustable), oldest
 * backup first, ranked by when its snapshots were taken. The step waits for
 * its task token (domain/budget/queue.ts): taken, the Lambda answers it at
 * once; refused, the backup keeps its place with its token until a return
 * hands it the units and answers it (or its step times out and asks again).
 * Without a token, a refusal is BudgetExhaustedError, which the state machine
 * retries. A cluster not copied to DR takes nothing.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDbBudgetStore } from '#domain/budget/dynamodb-store';
import { type TaskAnswers, takeOrWait } from '#domain/budget/queue';
import { acquire, type BudgetStore } from '#domain/budget/semaphore';
import { drTargetVariable } from '#domain/ebs/dr-target';
import { snapshotListSchema } from '#domain/ebs/snapshots';
import { backupIdSchema, clusterNameSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import * as z from '#domain/zod';
import {
  type AskAnswered,
  copyBudgetEnvironmentSchema,
  type ShareTaken,
} from './commons/budget-environment.ts';
import { withDrRepositories } from './commons/dr-target.ts';
import { logged } from './commons/logged.ts';
import { lambdaAnswers } from './commons/task-answers.ts';

const environmentSchema = z.object({ ...copyBudgetEnvironmentSchema.shape, PGSNAP_DR: drTargetVariable });

const eventSchema = z.object({
  cluster: clusterNameSchema,
  backupId: backupIdSchema,
  snapshotSet: z.object({
    snapshots: snapshotListSchema,
    /** When the snapshots were taken: the backup's place in the queue. */
    createdAt: z.iso.datetime(),
  }),
  /** The `.waitForTaskToken` step's token. */
  taskToken: z.optional(z.string().check(z.minLength(1))),
});

/** The handler with its store given: DynamoDB in Lambda, memory in the local runs. */
export const acquireCopyBudgetHandler =
  (store: () => BudgetStore, answers: () => TaskAnswers = lambdaAnswers) =>
  async (event: unknown): Promise<ShareTaken | AskAnswered> => {
    const env = parseWith(environmentSchema, process.env, 'the copy budget environment');
    const request = parseWith(eventSchema, event, 'the acquire-copy-budget event');
    if (!(await withDrRepositories(env.PGSNAP_DR)).clusters[request.cluster]) {
      const nothing: ShareTaken = { units: 0, held: 0, limit: env.PGSNAP_COPIES_BUDGET };
      if (request.taskToken) await answers().succeed(request.taskToken, nothing);
      return nothing;
    }
    const units = request.snapshotSet.snapshots.length;
    const share = {
      key: env.PGSNAP_COPIES_KEY,
      holder: request.backupId,
      units,
      limit: env.PGSNAP_COPIES_BUDGET,
      leaseSeconds: env.PGSNAP_COPY_LEASE_SECONDS,
      order: new Date(request.snapshotSet.createdAt).toISOString(),
      waitSeconds: env.PGSNAP_COPY_WAIT_SECONDS,
    };
    if (request.taskToken) return takeOrWait(store(), answers(), { ...share, token: request.taskToken });
    const record = await acquire(store(), share);
    return { units, held: record.held, limit: env.PGSNAP_COPIES_BUDGET };
  };

let dynamodb: DynamoDbBudgetStore | undefined;
export const handler = logged(
  'acquire-copy-budget',
  acquireCopyBudgetHandler(() => {
    dynamodb ??= new DynamoDbBudgetStore(new DynamoDBClient({}), process.env.PGSNAP_BUDGET_TABLE ?? '');
    return dynamodb;
  }),
);
