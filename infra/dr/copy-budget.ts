/**
 * The DR copy budget: EBS runs at most 20 concurrent snapshot copies per
 * destination Region (not adjustable; local/aws-facts.ts), so a backup takes
 * one unit per snapshot before CopySnapshot and returns them when its copies
 * are completed or on the failed copy's path. The shares live in the budget
 * table of the pending-snapshot budget (infra/backup/snapshot-budget.ts), in
 * their own item, `copies#<DR account>#<DR region>`, whose waiters form the
 * queue, oldest backup first (domain/budget/semaphore.ts); a waiting copy is
 * woken by a return (domain/budget/queue.ts), not polled.
 */
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import type { Construct } from 'constructs';
import { grantTaskAnswers } from '../backup/snapshot-budget.ts';
import type { EnvironmentConfig } from '../config/config.ts';
import { HandlerFunction } from '../lambda/handler-function.ts';

/** How long a waiting copy waits to be woken before it asks again: a lost wake-up costs at most this. */
export const copyShareTimeoutSeconds = 600;
/** A waiting copy keeps its place this long after its last ask: its step's timeout and the retry's pause. */
export const copyWaitSeconds = 900;

export class CopyBudget {
  readonly acquire: HandlerFunction;
  readonly release: HandlerFunction;

  constructor(
    scope: Construct,
    props: {
      config: EnvironmentConfig;
      table: ITable;
      /** The DR account and region: the quota is the destination Region's. */
      destination: { account: string; region: string };
      /** The copy functions' environment (PGSNAP_DR, among others). */
      environment: Record<string, string>;
    },
  ) {
    const { config, destination } = props;
    const copyHours = config.dr?.copyHours ?? 24;
    const environment = {
      ...props.environment,
      PGSNAP_BUDGET_TABLE: props.table.tableName,
      PGSNAP_COPIES_KEY: `copies#${destination.account}#${destination.region}`,
      PGSNAP_COPIES_BUDGET: String(config.budgets.copies),
      PGSNAP_COPY_LEASE_SECONDS: String(copyHours * 3_600 + 3_600),
      PGSNAP_COPY_WAIT_SECONDS: String(copyWaitSeconds),
    };
    this.acquire = new HandlerFunction(scope, 'AcquireCopyBudget', {
      handler: 'acquire-copy-budget',
      description: 'pgsnap: takes a share of the DR copy budget, oldest backup first',
      environment,
    });
    this.release = new HandlerFunction(scope, 'ReleaseCopyBudget', {
      handler: 'release-copy-budget',
      description: "pgsnap: returns a backup's share of the DR copy budget",
      environment,
    });
    for (const fn of [this.acquire, this.release]) {
      props.table.grant(fn, 'dynamodb:GetItem', 'dynamodb:PutItem');
      grantTaskAnswers(fn);
    }
  }
}

/** The copied clusters that list more volumes than the copy budget: their copies could never start. */
export function clustersTooBigForCopies(config: EnvironmentConfig): string[] {
  return config.clusters
    .filter((c) => c.copyToDr && (c.volumeIds?.length ?? 0) > config.budgets.copies)
    .map((c) => `${c.name} (${c.volumeIds!.length} volumes, budgets.copies ${config.budgets.copies})`);
}
