/**
 * A counting semaphore over an account budget that no retry can raise: EBS's
 * 100 pending snapshots per account and Region, 20 concurrent snapshot copies
 * per destination Region (docs.aws.amazon.com/ebs/latest/userguide/ebs-resource-quotas.html).
 * One record per budget holds the count in use (`held`) and one lease per
 * holder (a backupId) with the units it took and when it lapses, so that an
 * execution that dies without returning its share (a deleted execution, a
 * failed cleanup) gives it back when its lease expires.
 *
 * The rules live here once; a store only reads a record with its version and
 * writes it back if nobody wrote in between (DynamoDB's conditional write in
 * AWS, dynamodb-store.ts; a Map on one machine, MemoryBudgetStore).
 *
 * Oldest first (the DR copy queue): a share may say its `order` (the backup's
 * time). A taker refused for want of room leaves its place in the record, a
 * waiter with its order and units, and asks again later (the state machine's
 * Retry with full jitter). A taker is then granted only if the budget holds
 * its units *and* the units of every live waiter older than it: the older
 * waiters' units are reserved for them. So no backup is ever overtaken by a
 * younger one that would delay it, while a younger one still goes ahead when
 * there is room for everyone older too (a small copy beside a queue of large
 * ones whose units are all free). A waiter that stops asking (its execution
 * was stopped) loses its place once `waitSeconds` pass without a new attempt,
 * so a dead waiter cannot hold the queue. Nothing polls and nothing runs
 * besides the takers: the order is in the one conditionally written item.
 */
import { BudgetExhaustedError } from '../errors.ts';

export interface Lease {
  units: number;
  /** ISO time after which the lease no longer counts. */
  expiresAt: string;
  /** ISO time it was taken: the oldest waiter is not favoured by the store, but it is reported. */
  takenAt: string;
}

/** A taker refused for want of room, holding its place in the queue. */
export interface Waiter {
  units: number;
  /** What ranks waiters, oldest first: the backup's time, as an ISO string (ties go by holder). */
  order: string;
  /** ISO time after which the place is lost unless the waiter asks again. */
  expiresAt: string;
}

export interface BudgetRecord {
  held: number;
  leases: Record<string, Lease>;
  /** Absent when nobody waits (and on a budget whose takers never say their order). */
  waiters?: Record<string, Waiter>;
}

export interface BudgetStore {
  /** The record and an opaque version, or undefined where the budget was never used. */
  read(key: string): Promise<{ record: BudgetRecord; version: number } | undefined>;
  /** Writes `record` if the version is still `version` (undefined: the record must not exist); false if not. */
  write(key: string, record: BudgetRecord, version: number | undefined): Promise<boolean>;
}

const live = <T extends { expiresAt: string }>(entries: Record<string, T>, now: Date): Record<string, T> =>
  Object.fromEntries(Object.entries(entries).filter(([, e]) => Date.parse(e.expiresAt) > now.getTime()));

/** The record without its lapsed leases and waiters, its count made the sum of the rest. */
export function withoutLapsed(record: BudgetRecord, now: Date): BudgetRecord {
  const leases = live(record.leases, now);
  const waiters = live(record.waiters ?? {}, now);
  return {
    held: Object.values(leases).reduce((sum, lease) => sum + lease.units, 0),
    leases,
    ...(Object.keys(waiters).length > 0 ? { waiters } : {}),
  };
}

/** Whether waiter `a` (holder `aHolder`) comes before `b`: the older order, or the same and the lower holder. */
const before = (a: string, aHolder: string, b: string | undefined, bHolder: string): boolean =>
  b === undefined || a < b || (a === b && aHolder < bHolder);

export interface BudgetShare {
  key: string;
  holder: string;
  units: number;
  /** The budget: held never goes above it. */
  limit: number;
  /** How long the lease lasts unless returned. */
  leaseSeconds: number;
  /**
   * The holder's place in the queue (its backup's time, ISO): refused, it waits there and every younger
   * taker yields to it. Without it the taker neither waits in the queue nor is ever ahead of a waiter.
   */
  order?: string;
  /** How long a waiter keeps its place without asking again: longer than the longest pause between asks. */
  waitSeconds?: number;
}

/** Conflicting writers are retried this often before the caller's own retry takes over. */
const maxConflicts = 8;

/** What a change makes of a record: nothing to write, a record to write, and/or a refusal to throw once written. */
interface Change {
  next?: BudgetRecord;
  refusal?: BudgetExhaustedError;
}

async function update(
  store: BudgetStore,
  key: string,
  change: (record: BudgetRecord) => Change,
  now: () => Date,
): Promise<BudgetRecord> {
  for (let attempt = 0; ; attempt++) {
    const current = await store.read(key);
    const record = withoutLapsed(current?.record ?? { held: 0, leases: {} }, now());
    const { next, refusal } = change(record);
    if (next === undefined) {
      if (refusal) throw refusal;
      return record;
    }
    if (await store.write(key, next, current?.version)) {
      if (refusal) throw refusal;
      return next;
    }
    if (attempt + 1 >= maxConflicts) {
      throw new BudgetExhaustedError(
        `budget ${key} was written by ${maxConflicts} other executions while this one tried; it tries again later`,
      );
    }
    // Full jitter: writers that collided do not collide again in step.
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * 2 ** attempt));
  }
}

/**
 * Takes `units` of the budget for `holder`, or throws BudgetExhaustedError
 * naming what is held (and, with an `order`, leaves the holder's place in the
 * queue). Taking it again is a no-op (a retried step): the lease is the
 * holder's, whatever it asks the second time.
 */
export async function acquire(
  store: BudgetStore,
  share: BudgetShare,
  now: () => Date = () => new Date(),
): Promise<BudgetRecord> {
  if (share.units > share.limit) {
    throw new BudgetExhaustedError(
      `${share.holder} needs ${share.units} of budget ${share.key}, more than all of it (${share.limit}); ` +
        'raise the budget or snapshot fewer volumes at once',
    );
  }
  return update(
    store,
    share.key,
    (record): Change => {
      if (record.leases[share.holder]) return {};
      const waiters = record.waiters ?? {};
      const ahead = Object.entries(waiters).filter(
        ([holder, waiter]) =>
          holder !== share.holder && before(waiter.order, holder, share.order, share.holder),
      );
      const reserved = ahead.reduce((sum, [, waiter]) => sum + waiter.units, 0);
      const at = now();
      const { [share.holder]: own, ...others } = waiters;
      if (record.held + reserved + share.units > share.limit) {
        const refusal = new BudgetExhaustedError(
          `budget ${share.key}: ${record.held} of ${share.limit} held by ${Object.keys(record.leases).length} ` +
            `backup(s)${ahead.length > 0 ? `, ${reserved} kept for ${ahead.length} older backup(s) waiting` : ''}; ` +
            `${share.holder} needs ${share.units}`,
        );
        if (share.order === undefined) return { refusal };
        // The place is kept from the first ask: a later ask does not move the waiter back.
        const order = own && own.order < share.order ? own.order : share.order;
        const waiter: Waiter = {
          units: share.units,
          order,
          expiresAt: new Date(at.getTime() + (share.waitSeconds ?? 600) * 1000).toISOString(),
        };
        return { next: { ...record, waiters: { ...others, [share.holder]: waiter } }, refusal };
      }
      const lease: Lease = {
        units: share.units,
        takenAt: at.toISOString(),
        expiresAt: new Date(at.getTime() + share.leaseSeconds * 1000).toISOString(),
      };
      return {
        next: {
          held: record.held + share.units,
          leases: { ...record.leases, [share.holder]: lease },
          ...(Object.keys(others).length > 0 ? { waiters: others } : {}),
        },
      };
    },
    now,
  );
}

/** Returns `holder`'s share, if it holds one. Returning it twice is a no-op. */
export async function release(
  store: BudgetStore,
  key: string,
  holder: string,
  now: () => Date = () => new Date(),
): Promise<BudgetRecord> {
  return update(
    store,
    key,
    (record): Change => {
      const lease = record.leases[holder];
      if (!lease) return {};
      const { [holder]: _returned, ...leases } = record.leases;
      return { next: { ...record, held: record.held - lease.units, leases } };
    },
    now,
  );
}

/** A store in memory: one machine, one process (the local runs and the tests). */
export class MemoryBudgetStore implements BudgetStore {
  readonly records = new Map<string, { record: BudgetRecord; version: number }>();

  async read(key: string) {
    const found = this.records.get(key);
    return found && structuredClone(found);
  }

  async write(key: string, record: BudgetRecord, version: number | undefined) {
    if (this.records.get(key)?.version !== version) return false;
    this.records.set(key, { record: structuredClone(record), version: (version ?? 0) + 1 });
    return true;
  }
}
