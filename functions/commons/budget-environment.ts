/** The environment of the budget Lambdas (infra/backup/snapshot-budget.ts sets it). */
import * as z from '#domain/zod';

const positiveInt = z.pipe(z.coerce.number(), z.int().check(z.gte(1)));

export const budgetEnvironmentSchema = z.object({
  /** The budget's item: `pending-snapshots#<account>#<region>`. */
  PGSNAP_PENDING_SNAPSHOTS_KEY: z.string().check(z.minLength(1)),
  /** Units (pending snapshots) the backups of this environment may hold at once. */
  PGSNAP_PENDING_SNAPSHOTS_BUDGET: positiveInt,
  /** Units a backup takes when its cluster lists no volumes. */
  PGSNAP_UNLISTED_VOLUMES: positiveInt,
  /** A share not returned lapses after this long. */
  PGSNAP_BUDGET_LEASE_SECONDS: positiveInt,
  /** A waiting backup keeps its place in the queue this long after its last ask (longer than its step's timeout). */
  PGSNAP_BUDGET_WAIT_SECONDS: z.optional(positiveInt),
});

/** The environment of the DR copy budget Lambdas (infra/dr/copy-budget.ts sets it). */
export const copyBudgetEnvironmentSchema = z.object({
  /** The budget's item: `copies#<DR account>#<DR region>` (EBS counts concurrent copies per destination Region). */
  PGSNAP_COPIES_KEY: z.string().check(z.minLength(1)),
  /** Snapshot copies the backups of this environment may run at once, of the 20 per destination Region. */
  PGSNAP_COPIES_BUDGET: positiveInt,
  /** A share not returned lapses after this long: the copy timeout and an hour. */
  PGSNAP_COPY_LEASE_SECONDS: positiveInt,
  /** A waiting copy keeps its place in the queue this long after its last ask. */
  PGSNAP_COPY_WAIT_SECONDS: positiveInt,
});

/** What a budget Lambda answers once it holds a share. */
export type { ShareTaken } from '#domain/budget/queue';

/** What the acquire Lambda of a `.waitForTaskToken` step returns (the task's result is what its token is answered). */
export interface AskAnswered {
  taken: boolean;
  /** Waiters this ask woke (units that had lapsed, handed over in the same write). */
  woken: number;
  held: number;
}
