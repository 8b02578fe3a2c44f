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
 *
 * Woken, not polled: a waiter may leave its Step Functions task token (the
 * acquire step is a `.waitForTaskToken` task). Every write (a return, a take,
 * one that finds leases lapsed) hands the free units to the waiters in queue
 * order, by the same rule as a take, as leases in that same conditional
 * write, and names the waiters it woke so the caller answers their tokens
 * (queue.ts). A wake-up that is lost (the answer fails, the Lambda dies
 * between the write and the answer) strands nobody: the waiter's task times
 * out, its step asks again, and finds the lease already its own.
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
  /** The waiting task's token: answered when a return or a take hands the waiter its share. */
  token?: string;
  /** How long the lease it is handed lasts. */
  leaseSeconds?: number;
}

/** A waiter that a write turned into a holder: its token is to be answered. */
export interface Woken {
  holder: string;
  units: number;
  token?: string;
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
  /** The asking task's token: refused, the holder waits to be woken (see the file's comment). */
  token?: string;
}

/** What a return needs to hand the freed units to the waiters: the budget and a lease's length. */
export interface Handover {
  limit: number;
}

/** What a take or a return did: the record written (or read), whether the taker holds its share, who was woken. */
export interface BudgetOutcome {
  record: BudgetRecord;
  taken: boolean;
  woken: Woken[];
  refusal?: BudgetExhaustedError;
}

/** Conflicting writers are retried this often before the caller's own retry takes over. */
const maxConflicts = 8;

/** What a change makes of a record: nothing to write, a record to write, and/or a refusal to throw once written. */
interface Change {
  next?: BudgetRecord;
  refusal?: BudgetExhaustedError;
}

/**
 * Hands the free units to the waiters, oldest first, by the rule of a take: a waiter is granted when the
 * budget holds its units and those of every older waiter not granted. Only a waiter that left a token (or
 * a lease length) is handed a share: one that polls takes it itself when it asks again.
 */
export function handOver(
  record: BudgetRecord,
  limit: number,
  at: Date,
): { record: BudgetRecord; woken: Woken[] } {
  const waiters = Object.entries(record.waiters ?? {}).sort(([ah, a], [bh, b]) =>
    before(a.order, ah, b.order, bh) ? -1 : 1,
  );
  let held = record.held;
  let reserved = 0;
  const leases = { ...record.leases };
  const left: Record<string, Waiter> = {};
  const woken: Woken[] = [];
  for (const [holder, waiter] of waiters) {
    if (waiter.leaseSeconds !== undefined && held + reserved + waiter.units <= limit) {
      held += waiter.units;
      leases[holder] = {
        units: waiter.units,
        takenAt: at.toISOString(),
        expiresAt: new Date(at.getTime() + waiter.leaseSeconds * 1000).toISOString(),
      };
      woken.push({ holder, units: waiter.units, ...(waiter.token ? { token: waiter.token } : {}) });
    } else {
      reserved += waiter.units;
      left[holder] = waiter;
    }
  }
  if (woken.length === 0) return { record, woken };
  return { record: { held, leases, ...(Object.keys(left).length > 0 ? { waiters: left } : {}) }, woken };
}

async function update(
  store: BudgetStore,
  key: string,
  change: (record: BudgetRecord) => Change,
  now: () => Date,
  limit?: number,
): Promise<Omit<BudgetOutcome, 'taken'>> {
  for (let attempt = 0; ; attempt++) {
    const current = await store.read(key);
    const stored = current?.record ?? { held: 0, leases: {} };
    const at = now();
    const record = withoutLapsed(stored, at);
    const changed = change(record);
    // Whatever the change, units that are free (returned, lapsed) go to the waiters in the same write.
    const handed =
      limit === undefined
        ? { record: changed.next ?? record, woken: [] }
        : handOver(changed.next ?? record, limit, at);
    const next = changed.next ?? (handed.woken.length > 0 ? handed.record : undefined);
    const refusal = changed.refusal;
    if (next === undefined) return { record, woken: [], ...(refusal ? { refusal } : {}) };
    if (await store.write(key, handed.record, current?.version)) {
      return { record: handed.record, woken: handed.woken, ...(refusal ? { refusal } : {}) };
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
 * Takes `units` of the budget for `holder`, or refuses with BudgetExhaustedError
 * naming what is held (and, with an `order` or a `token`, leaves the holder's
 * place in the queue). Taking it again is a no-op (a retried step): the lease
 * is the holder's, whatever it asks the second time, including a lease a
 * return handed it while it waited. Never throws the refusal: see `acquire`.
 */
export async function take(
  store: BudgetStore,
  share: BudgetShare,
  now: () => Date = () => new Date(),
): Promise<BudgetOutcome> {
  if (share.units > share.limit) {
    throw new BudgetExhaustedError(
      `${share.holder} needs ${share.units} of budget ${share.key}, more than all of it (${share.limit}); ` +
        'raise the budget or snapshot fewer volumes at once',
    );
  }
  const outcome = await update(
    store,
    share.key,
    (record): Change => {
      if (record.leases[share.holder]) return {};
      const waiters = record.waiters ?? {};
      const { [share.holder]: own, ...others } = waiters;
      // A waiter's place is kept from its first ask: a later ask does not move it back.
      const order = own && (share.order === undefined || own.order < share.order) ? own.order : share.order;
      const ahead = Object.entries(others).filter(([holder, waiter]) =>
        before(waiter.order, holder, order, share.holder),
      );
      const reserved = ahead.reduce((sum, [, waiter]) => sum + waiter.units, 0);
      const at = now();
      if (record.held + reserved + share.units > share.limit) {
        const refusal = new BudgetExhaustedError(
          `budget ${share.key}: ${record.held} of ${share.limit} held by ${Object.keys(record.leases).length} ` +
            `backup(s)${ahead.length > 0 ? `, ${reserved} kept for ${ahead.length} older backup(s) waiting` : ''}; ` +
            `${share.holder} needs ${share.units}`,
        );
        if (order === undefined && share.token === undefined) return { refusal };
        const waiter: Waiter = {
          units: share.units,
          order: order ?? at.toISOString(),
          expiresAt: new Date(at.getTime() + (share.waitSeconds ?? 600) * 1000).toISOString(),
          ...(share.token === undefined ? {} : { token: share.token, leaseSeconds: share.leaseSeconds }),
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
    share.limit,
  );
  const taken = outcome.record.leases[share.holder] !== undefined;
  // Handed its own share in the write that queued it: the taker answers for itself, not as one woken.
  const woken = outcome.woken.filter((w) => w.holder !== share.holder);
  if (taken) {
    const { refusal: _none, ...granted } = outcome;
    return { ...granted, woken, taken };
  }
  return { ...outcome, woken, taken };
}

/**
 * Takes `units` of the budget for `holder` (see `take`), or throws
 * BudgetExhaustedError: the step that polls retries it. Woken waiters are the
 * caller of `take`'s to answer; this one does not wake anybody.
 */
export async function acquire(
  store: BudgetStore,
  share: BudgetShare,
  now: () => Date = () => new Date(),
): Promise<BudgetRecord> {
  const outcome = await take(store, share, now);
  if (outcome.refusal) throw outcome.refusal;
  return outcome.record;
}

/**
 * Returns `holder`'s share, if it holds one, and with `handover` hands the
 * freed units (and any lapsed) to the waiters that left a token, in queue
 * order, in the same write. Returning it twice is a no-op.
 */
export async function giveBack(
  store: BudgetStore,
  key: string,
  holder: string,
  handover?: Handover,
  now: () => Date = () => new Date(),
): Promise<Omit<BudgetOutcome, 'taken' | 'refusal'>> {
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
    handover?.limit,
  );
}

/** Returns `holder`'s share, if it holds one. Returning it twice is a no-op. */
export async function release(
  store: BudgetStore,
  key: string,
  holder: string,
  now: () => Date = () => new Date(),
): Promise<BudgetRecord> {
  return (await giveBack(store, key, holder, undefined, now)).record;
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
