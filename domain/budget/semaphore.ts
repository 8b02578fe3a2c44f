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
 */
import { BudgetExhaustedError } from '../errors.ts';

export interface Lease {
  units: number;
  /** ISO time after which the lease no longer counts. */
  expiresAt: string;
  /** ISO time it was taken: the oldest waiter is not favoured by the store, but it is reported. */
  takenAt: string;
}

export interface BudgetRecord {
  held: number;
  leases: Record<string, Lease>;
}

export interface BudgetStore {
  /** The record and an opaque version, or undefined where the budget was never used. */
  read(key: string): Promise<{ record: BudgetRecord; version: number } | undefined>;
  /** Writes `record` if the version is still `version` (undefined: the record must not exist); false if not. */
  write(key: string, record: BudgetRecord, version: number | undefined): Promise<boolean>;
}

/** The record without its lapsed leases, its count made the sum of the rest. */
export function withoutLapsed(record: BudgetRecord, now: Date): BudgetRecord {
  const leases = Object.fromEntries(
    Object.entries(record.leases).filter(([, lease]) => Date.parse(lease.expiresAt) > now.getTime()),
  );
  return { held: Object.values(leases).reduce((sum, lease) => sum + lease.units, 0), leases };
}

export interface BudgetShare {
  key: string;
  holder: string;
  units: number;
  /** The budget: held never goes above it. */
  limit: number;
  /** How long the lease lasts unless returned. */
  leaseSeconds: number;
}

/** Conflicting writers are retried this often before the caller's own retry takes over. */
const maxConflicts = 8;

async function update(
  store: BudgetStore,
  key: string,
  change: (record: BudgetRecord) => BudgetRecord | undefined,
  now: () => Date,
): Promise<BudgetRecord> {
  for (let attempt = 0; ; attempt++) {
    const current = await store.read(key);
    const record = withoutLapsed(current?.record ?? { held: 0, leases: {} }, now());
    const next = change(record);
    if (next === undefined) return record;
    if (await store.write(key, next, current?.version)) return next;
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
 * naming what is held. Taking it again is a no-op (a retried step): the lease
 * is the holder's, whatever it asks the second time.
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
    (record) => {
      if (record.leases[share.holder]) return undefined;
      if (record.held + share.units > share.limit) {
        throw new BudgetExhaustedError(
          `budget ${share.key}: ${record.held} of ${share.limit} held by ${Object.keys(record.leases).length} ` +
            `backup(s); ${share.holder} needs ${share.units}`,
        );
      }
      const at = now();
      const lease: Lease = {
        units: share.units,
        takenAt: at.toISOString(),
        expiresAt: new Date(at.getTime() + share.leaseSeconds * 1000).toISOString(),
      };
      return { held: record.held + share.units, leases: { ...record.leases, [share.holder]: lease } };
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
    (record) => {
      const lease = record.leases[holder];
      if (!lease) return undefined;
      const { [holder]: _returned, ...leases } = record.leases;
      return { held: record.held - lease.units, leases };
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
