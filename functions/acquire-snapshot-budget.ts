/**
 * Lambda for "Take a share of the pending-snapshot budget", before begin: as
 * many units as the backup has volumes (or PGSNAP_UNLISTED_VOLUMES when the
 * cluster lists none: begin reports them only later). The step waits for its
 * task token (domain/budget/queue.ts): taken, the Lambda answers it at once;
 * refused, the backup waits in the queue, oldest backupId first, until a
 * return hands it the share and answers its token (or its step times out and
 * asks again). Without a token (an older definition), a refusal is
 * BudgetExhaustedError, which the state machine retries.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDbBudgetStore } from '#domain/budget/dynamodb-store';
import { type TaskAnswers, takeOrWait } from '#domain/budget/queue';
import { acquire, type BudgetStore } from '#domain/budget/semaphore';
import { backupIdSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import * as z from '#domain/zod';
import { type AskAnswered, budgetEnvironmentSchema, type ShareTaken } from './commons/budget-environment.ts';
import { logged } from './commons/logged.ts';
import { lambdaAnswers } from './commons/task-answers.ts';

const eventSchema = z.object({
  backupId: backupIdSchema,
  volumeIds: z._default(z.array(z.string()), []),
  /** The `.waitForTaskToken` step's token. */
  taskToken: z.optional(z.string().check(z.minLength(1))),
});

/** A waiting backup asks again when its step times out (backup-steps.ts): its place lasts past that. */
const defaultWaitSeconds = 900;

/** The handler with its store given: DynamoDB in Lambda, memory in the local runs. */
export const acquireSnapshotBudgetHandler =
  (store: () => BudgetStore, answers: () => TaskAnswers = lambdaAnswers) =>
  async (event: unknown): Promise<ShareTaken | AskAnswered> => {
    const env = parseWith(budgetEnvironmentSchema, process.env, 'the snapshot budget environment');
    const request = parseWith(eventSchema, event, 'the acquire-snapshot-budget event');
    const units = request.volumeIds.length || env.PGSNAP_UNLISTED_VOLUMES;
    const share = {
      key: env.PGSNAP_PENDING_SNAPSHOTS_KEY,
      holder: request.backupId,
      units,
      limit: env.PGSNAP_PENDING_SNAPSHOTS_BUDGET,
      leaseSeconds: env.PGSNAP_BUDGET_LEASE_SECONDS,
    };
    if (request.taskToken) {
      return takeOrWait(store(), answers(), {
        ...share,
        token: request.taskToken,
        // A backupId starts with its time to the second: the oldest backup first.
        order: request.backupId,
        waitSeconds: env.PGSNAP_BUDGET_WAIT_SECONDS ?? defaultWaitSeconds,
      });
    }
    const record = await acquire(store(), share);
    return { units, held: record.held, limit: env.PGSNAP_PENDING_SNAPSHOTS_BUDGET };
  };

let dynamodb: DynamoDbBudgetStore | undefined;
export const handler = logged(
  'acquire-snapshot-budget',
  acquireSnapshotBudgetHandler(() => {
    dynamodb ??= new DynamoDbBudgetStore(new DynamoDBClient({}), process.env.PGSNAP_BUDGET_TABLE ?? '');
    return dynamodb;
  }),
);
