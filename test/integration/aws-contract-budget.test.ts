/**
 * The budget semaphore over DynamoDB's conditional writes, against moto_server:
 * the same contract as the store in memory, with concurrent writers racing on
 * one item.
 */
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe } from 'vitest';
import { DynamoDbBudgetStore } from '#domain/budget/dynamodb-store';
import { budgetContract } from '../support/budget-contract.ts';
import { Moto, skipWithoutMoto } from '../support/moto.ts';

describe.skipIf(skipWithoutMoto)('the budget semaphore in DynamoDB (moto)', () => {
  let moto: Moto;
  let dynamodb: DynamoDBClient;
  let store: DynamoDbBudgetStore;
  beforeAll(async () => {
    moto = await Moto.start();
    dynamodb = new DynamoDBClient(moto.client('eu-west-1'));
    await dynamodb.send(
      new CreateTableCommand({
        TableName: 'pgsnap-budgets',
        AttributeDefinitions: [{ AttributeName: 'budget', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'budget', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    store = new DynamoDbBudgetStore(dynamodb, 'pgsnap-budgets');
  });
  afterAll(async () => {
    dynamodb?.destroy();
    await moto?.stop();
  });

  budgetContract(() => store);
});
