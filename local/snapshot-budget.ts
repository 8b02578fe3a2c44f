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
import { type Json, LocalTaskTokens, type TaskHandler } from './state-machine.ts';

/** One set of task tokens per store: runs that share a store wake each other. */
const tokensOf = new WeakMap<MemoryBudgetStore, LocalTaskTokens>();

/** The task tokens the budget steps over `store` wait on (a test looks at who was answered). */
export function budgetTokens(store: MemoryBudgetStore): LocalTaskTokens {
  let tokens = tokensOf.get(store);
  if (!tokens) {
    tokens = new LocalTaskTokens();
    tokensOf.set(store, tokens);
  }
  return tokens;
}

/** The budget Lambdas' environment, as the stack would set it, for a local run. */
export function setLocalBudgetEnvironment(budget = 90, copies = 20): void {
  Object.assign(process.env, {
    PGSNAP_PENDING_SNAPSHOTS_KEY: 'pending-snapshots#local',
    PGSNAP_PENDING_SNAPSHOTS_BUDGET: String(budget),
    PGSNAP_UNLISTED_VOLUMES: '3',
    PGSNAP_BUDGET_LEASE_SECONDS: '3600',
    PGSNAP_BUDGET_WAIT_SECONDS: '900',
    PGSNAP_COPIES_KEY: 'copies#local',
    PGSNAP_COPIES_BUDGET: String(copies),
    PGSNAP_COPY_LEASE_SECONDS: '90000',
    PGSNAP_COPY_WAIT_SECONDS: '900',
  });
}

/** The handlers of the budget states over `store` (the copy states only act where the definition has them). */
export function localBudgetHandlers(store: MemoryBudgetStore = new MemoryBudgetStore()) {
  const tokens = budgetTokens(store);
  const acquire = acquireSnapshotBudgetHandler(
    () => store,
    () => tokens,
  );
  const release = releaseSnapshotBudgetHandler(
    () => store,
    () => tokens,
  );
  const acquireCopies = acquireCopyBudgetHandler(
    () => store,
    () => tokens,
  );
  const releaseCopies = releaseCopyBudgetHandler(
    () => store,
    () => tokens,
  );
  const asTask =
    (handle: (event: unknown) => Promise<unknown>): TaskHandler =>
    async (input) =>
      (await handle(input)) as Json;
  return {
    // The acquire steps wait for their task token: answered by the take, or by a return that wakes them.
    [states.acquireBudget]: tokens.task(acquire),
    [states.releaseBudget]: asTask(release),
    [states.releaseBudgetOnFailure]: asTask(release),
    [states.acquireCopies]: tokens.task(acquireCopies),
    [states.releaseCopies]: asTask(releaseCopies),
    [states.releaseCopiesOnFailure]: asTask(releaseCopies),
  };
}
