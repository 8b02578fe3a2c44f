/**
 * The budget store in AWS: one DynamoDB item per budget (partition key
 * `budget`), written back only if its `version` is the one read
 * (ConditionExpression: a conditional write, DynamoDB's own compare-and-set;
 * docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html).
 * Reads are strongly consistent, so a writer sees the last write. The item
 * holds `held`, the leases and the waiters (semaphore.ts: the queue, oldest
 * first) as maps, and `version`; at 90 leases and a few hundred waiters it is
 * some tens of KB, below DynamoDB's 400 KB per item.
 */
import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import * as z from '../zod.ts';
import type { BudgetRecord, BudgetStore } from './semaphore.ts';

const leasesSchema = z.record(
  z.string(),
  z.object({ units: z.int(), expiresAt: z.string(), takenAt: z.string() }),
);
// Every field of a Waiter (semaphore.ts): a field left out here would be dropped on read, and a waiter
// without its token is never woken.
const waitersSchema = z.record(
  z.string(),
  z.object({
    units: z.int(),
    order: z.string(),
    expiresAt: z.string(),
    token: z.optional(z.string()),
    leaseSeconds: z.optional(z.number()),
  }),
);

export class DynamoDbBudgetStore implements BudgetStore {
  constructor(
    private readonly dynamodb: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async read(key: string) {
    const { Item } = await this.dynamodb.send(
      new GetItemCommand({ TableName: this.tableName, Key: { budget: { S: key } }, ConsistentRead: true }),
    );
    if (!Item) return undefined;
    const waiters = waitersSchema.parse(JSON.parse(Item.waiters?.S ?? '{}'));
    const record: BudgetRecord = {
      held: Number(Item.held?.N ?? '0'),
      leases: leasesSchema.parse(JSON.parse(Item.leases?.S ?? '{}')),
      ...(Object.keys(waiters).length > 0 ? { waiters } : {}),
    };
    return { record, version: Number(Item.version?.N ?? '0') };
  }

  async write(key: string, record: BudgetRecord, version: number | undefined) {
    try {
      await this.dynamodb.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            budget: { S: key },
            held: { N: String(record.held) },
            // One attribute: the whole map is replaced with the record, under the version check.
            leases: { S: JSON.stringify(record.leases) },
            waiters: { S: JSON.stringify(record.waiters ?? {}) },
            version: { N: String((version ?? 0) + 1) },
            updatedAt: { S: new Date().toISOString() },
          },
          ConditionExpression: version === undefined ? 'attribute_not_exists(budget)' : '#version = :version',
          ...(version === undefined
            ? {}
            : {
                ExpressionAttributeNames: { '#version': 'version' },
                ExpressionAttributeValues: { ':version': { N: String(version) } },
              }),
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }
}
