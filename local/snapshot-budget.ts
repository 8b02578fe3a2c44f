/**
 * The pending-snapshot and DR copy budgets on one machine: the budget Lambdas' handlers
 * over a store in memory instead of DynamoDB, bound to their states for the
 * local runs (`pgsnap demo`, the e2e tests, the bench). One store per run
 * unless a caller shares one between runs (backups competing for a budget).
 */
import { MemoryBudgetStore } from '#domain/budget/semaphore';
import { acquireCopyBudgetHandler } from '../functions/acquire-copy-budget.ts';
import { acquireSnapshotBudgetHandler } from '../functions/acquire-snapshot-budget.ts';
import { releaseCopyBudgetHandler } from '../functions/release-copy-budget.ts';
import { releaseSnapshotBudgetHandler } from '../functions/release-snapshot-budget.ts';
import { states } from '../infra/backup/state-names.ts';
import type { Json, TaskHandler } from './state-machine.ts';

/** The budget Lambdas' environment, as the stack would set it, for a local run. */
export function setLocalBudgetEnvironment(budget = 90, copies = 20): void {
  Object.assign(process.env, {
    PGSNAP_PENDING_SNAPSHOTS_KEY: 'pending-snapshots#local',
    PGSNAP_PENDING_SNAPSHOTS_BUDGET: String(budget),
    PGSNAP_UNLISTED_VOLUMES: '3',
    PGSNAP_BUDGET_LEASE_SECONDS: '3600',
    PGSNAP_COPIES_KEY: 'copies#local',
    PGSNAP_COPIES_BUDGET: String(copies),
    PGSNAP_COPY_LEASE_SECONDS: '90000',
    PGSNAP_COPY_WAIT_SECONDS: '600',
  });
}

/** The handlers of the budget states over `store` (the copy states only act where the definition has them). */
export function localBudgetHandlers(store: MemoryBudgetStore = new MemoryBudgetStore()) {
  const acquire = acquireSnapshotBudgetHandler(() => store);
  const release = releaseSnapshotBudgetHandler(() => store);
  const acquireCopies = acquireCopyBudgetHandler(() => store);
  const releaseCopies = releaseCopyBudgetHandler(() => store);
  const asTask =
    (handle: (event: unknown) => Promise<unknown>): TaskHandler =>
    async (input) =>
      (await handle(input)) as Json;
  return {
    [states.acquireBudget]: asTask(acquire),
    [states.releaseBudget]: asTask(release),
    [states.releaseBudgetOnFailure]: asTask(release),
    [states.acquireCopies]: asTask(acquireCopies),
    [states.releaseCopies]: asTask(releaseCopies),
    [states.releaseCopiesOnFailure]: asTask(releaseCopies),
  };
}
