/**
 * The pending-snapshot budget: EBS allows 100 pending snapshots per account
 * and Region (not adjustable; pingcap/tidb#44325 hit it at 34 nodes), so a
 * backup takes a share before `begin` and returns it when its snapshots are
 * completed or on the cleanup path (domain/budget/semaphore.ts). The shares
 * live in a DynamoDB table written with conditional writes; on demand, a
 * backup costs four requests (about $0.000003). A backup refused a share
 * waits in the queue, oldest execution first, to be woken by a return
 * (domain/budget/queue.ts): the acquire step waits for its task token.
 */
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { AttributeType, BillingMode, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import {
  IntegrationPattern,
  JitterType,
  JsonPath,
  TaskInput,
  type TaskStateBase,
  Timeout,
} from 'aws-cdk-lib/aws-stepfunctions';
import { LambdaInvoke } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';
import { stateRetries } from '#domain/aws-retry';
import type { EnvironmentConfig } from '../config/config.ts';
import { acknowledge } from '../guards/acknowledge.ts';
import { HandlerFunction } from '../lambda/handler-function.ts';
import { retryOf } from '../steps.ts';
import type { StateName } from './state-names.ts';

/** How long a waiting backup waits to be woken before it asks again: a lost wake-up costs at most this. */
export const snapshotShareTimeoutSeconds = 300;
/** A waiting backup keeps its place this long after its last ask: its step's timeout and the retry's pause. */
export const snapshotWaitSeconds = 900;

/**
 * A step that takes a share of a budget or waits to be woken with it
 * (`.waitForTaskToken`: the Lambda answers the token itself when it takes the
 * share, a return answers it otherwise). Past `timeoutSeconds` without an
 * answer (a lost wake-up) it asks again, `attempts` times, after a pause of
 * at most five seconds (full jitter); the ask finds a share handed to it in
 * the meantime. Conflicting writers past the store's own retries
 * (BudgetExhaustedError) ask again too.
 */
export function waitForShare(
  scope: Construct,
  name: StateName,
  fn: IFunction,
  payload: Record<string, unknown>,
  resultPath: string,
  wait: { timeoutSeconds: number; attempts: number },
): TaskStateBase {
  return new LambdaInvoke(scope, name, {
    lambdaFunction: fn,
    integrationPattern: IntegrationPattern.WAIT_FOR_TASK_TOKEN,
    payload: TaskInput.fromObject({ ...payload, taskToken: JsonPath.taskToken }),
    taskTimeout: Timeout.duration(Duration.seconds(wait.timeoutSeconds)),
    resultPath,
  })
    .addRetry(retryOf(stateRetries.throttled))
    .addRetry({
      errors: ['States.Timeout', 'BudgetExhaustedError'],
      interval: Duration.seconds(5),
      backoffRate: 1,
      maxAttempts: wait.attempts,
      jitterStrategy: JitterType.FULL,
    });
}

/** Lets a budget Lambda answer the tokens of the steps it wakes. */
export function grantTaskAnswers(fn: HandlerFunction): void {
  fn.addToRolePolicy(new PolicyStatement({ actions: ['states:SendTaskSuccess'], resources: ['*'] }));
  acknowledge(fn, {
    'AwsSolutions-IAM5[Resource::*]':
      'SendTaskSuccess supports no resource-level permissions; the task token scopes it (a budget Lambda answers the waiters it hands a share)',
  });
}

/** How long a share lasts unless returned: begin, every snapshot, end, and an hour to spare. */
export function leaseSeconds(timeouts: EnvironmentConfig['timeouts']): number {
  return 2 * timeouts.hostCommandSeconds + timeouts.snapshotHours * 3_600 + 3_600;
}

export class SnapshotBudget {
  readonly table: Table;
  readonly acquire: HandlerFunction;
  readonly release: HandlerFunction;

  constructor(scope: Construct, config: EnvironmentConfig) {
    const stack = Stack.of(scope);
    this.table = new Table(scope, 'Budgets', {
      partitionKey: { name: 'budget', type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      encryption: TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      // Leases lapse on their own: nothing in the table outlives the backups it counts.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const environment = {
      PGSNAP_BUDGET_TABLE: this.table.tableName,
      PGSNAP_PENDING_SNAPSHOTS_KEY: `pending-snapshots#${stack.account}#${stack.region}`,
      PGSNAP_PENDING_SNAPSHOTS_BUDGET: String(config.budgets.pendingSnapshots),
      PGSNAP_UNLISTED_VOLUMES: String(config.budgets.unlistedVolumes),
      PGSNAP_BUDGET_LEASE_SECONDS: String(leaseSeconds(config.timeouts)),
      PGSNAP_BUDGET_WAIT_SECONDS: String(snapshotWaitSeconds),
    };
    this.acquire = new HandlerFunction(scope, 'AcquireSnapshotBudget', {
      handler: 'acquire-snapshot-budget',
      description: 'pgsnap: takes a share of the pending-snapshot budget before a backup begins',
      environment,
    });
    this.release = new HandlerFunction(scope, 'ReleaseSnapshotBudget', {
      handler: 'release-snapshot-budget',
      description: "pgsnap: returns a backup's share of the pending-snapshot budget",
      environment,
    });
    for (const fn of [this.acquire, this.release]) {
      this.table.grant(fn, 'dynamodb:GetItem', 'dynamodb:PutItem');
      grantTaskAnswers(fn);
    }
  }
}
