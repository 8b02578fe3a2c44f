/**
 * Lambda for "Take a share of the pending-snapshot budget", before begin: as
 * many units as the backup has volumes (or PGSNAP_UNLISTED_VOLUMES when the
 * cluster lists none: begin reports them only later), or BudgetExhaustedError,
 * which the state machine retries with backoff and full jitter.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDbBudgetStore } from '#domain/budget/dynamodb-store';
import { acquire, type BudgetStore } from '#domain/budget/semaphore';
import { backupIdSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import * as z from '#domain/zod';
import { budgetEnvironmentSchema, type ShareTaken } from './commons/budget-environment.ts';
import { logged } from './commons/logged.ts';

const eventSchema = z.object({
  backupId: backupIdSchema,
  volumeIds: z._default(z.array(z.string()), []),
});

/** The handler with its store given: DynamoDB in Lambda, memory in the local runs. */
export const acquireSnapshotBudgetHandler =
  (store: () => BudgetStore) =>
  async (event: unknown): Promise<ShareTaken> => {
    const env = parseWith(budgetEnvironmentSchema, process.env, 'the snapshot budget environment');
    const request = parseWith(eventSchema, event, 'the acquire-snapshot-budget event');
    const units = request.volumeIds.length || env.PGSNAP_UNLISTED_VOLUMES;
    const record = await acquire(store(), {
      key: env.PGSNAP_PENDING_SNAPSHOTS_KEY,
      holder: request.backupId,
      units,
      limit: env.PGSNAP_PENDING_SNAPSHOTS_BUDGET,
      leaseSeconds: env.PGSNAP_BUDGET_LEASE_SECONDS,
    });
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
