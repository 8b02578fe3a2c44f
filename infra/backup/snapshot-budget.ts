/**
 * The pending-snapshot budget: EBS allows 100 pending snapshots per account
 * and Region (not adjustable; pingcap/tidb#44325 hit it at 34 nodes), so a
 * backup takes a share before `begin` and returns it when its snapshots are
 * completed or on the cleanup path (domain/budget/semaphore.ts). The shares
 * live in a DynamoDB table written with conditional writes; on demand, a
 * backup costs four requests (about $0.000003).
 */
import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import { AttributeType, BillingMode, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from '../config/config.ts';
import { HandlerFunction } from '../lambda/handler-function.ts';

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
    for (const fn of [this.acquire, this.release])
      this.table.grant(fn, 'dynamodb:GetItem', 'dynamodb:PutItem');
  }
}
