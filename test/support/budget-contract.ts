/**
 * What any budget store must make true, run against each store: in memory
 * (test/unit/budget.test.ts) and DynamoDB in moto_server
 * (test/integration/aws-contract-budget.test.ts). Concurrent takers never hold
 * more than the budget, a retried take is one share, a return frees it, and a
 * share never returned lapses with its lease; with an order (the DR copy
 * queue), the oldest waiting backup gets the next share.
 */
import { expect, test } from 'vitest';
import { giveBackAndWake, takeOrWait } from '#domain/budget/queue';
import { acquire, type BudgetStore, release } from '#domain/budget/semaphore';
import { BudgetExhaustedError } from '#domain/errors';

export function budgetContract(store: () => BudgetStore): void {
  let n = 0;
  const key = () => `pending-snapshots#111122223333#eu-west-1#${++n}`;
  const share = (k: string, holder: string, units = 2) => ({
    key: k,
    holder,
    units,
    limit: 10,
    leaseSeconds: 600,
  });

  test('twenty backups of two volumes at once: five get a share, the others are told the budget is spent', async () => {
    const k = key();
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => acquire(store(), share(k, `backup-${i}`))),
    );
    const taken = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r) => r.status === 'rejected');
    expect(taken).toHaveLength(5);
    for (const r of refused) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(BudgetExhaustedError);
    const record = (await store().read(k))!.record;
    expect(record.held).toBe(10);
    expect(Object.keys(record.leases)).toHaveLength(5);
  });

  test('a retried take is the same share; a return frees it for the next backup, and returning twice is harmless', async () => {
    const k = key();
    for (let i = 0; i < 5; i++) await acquire(store(), share(k, `backup-${i}`));
    await acquire(store(), share(k, 'backup-0'));
    await expect(acquire(store(), share(k, 'backup-5'))).rejects.toThrow(/10 of 10 held by 5 backup\(s\)/);
    await release(store(), k, 'backup-0');
    await release(store(), k, 'backup-0');
    expect((await release(store(), k, 'never-took')).held).toBe(8);
    await acquire(store(), share(k, 'backup-5'));
    expect((await store().read(k))!.record.held).toBe(10);
  });

  test('a share never returned lapses with its lease', async () => {
    const k = key();
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    await acquire(store(), { ...share(k, 'crashed', 10), leaseSeconds: 60 }, () => new Date(t0));
    await expect(acquire(store(), share(k, 'waiting'), () => new Date(t0 + 59_000))).rejects.toThrow(
      BudgetExhaustedError,
    );
    const after = await acquire(store(), share(k, 'waiting'), () => new Date(t0 + 61_000));
    expect(after).toEqual({ held: 2, leases: { waiting: expect.objectContaining({ units: 2 }) } });
  });

  test('a backup needing more than the whole budget is refused at once, saying so', async () => {
    await expect(acquire(store(), share(key(), 'huge', 11))).rejects.toThrow(/more than all of it \(10\)/);
  });

  // The DR copy queue: 20 concurrent copies, one unit per snapshot copied, ordered by the backup's time.
  const copies = (k: string, holder: string, order: string, units = 1) => ({
    key: k,
    holder,
    units,
    limit: 2,
    leaseSeconds: 3_600,
    order,
    waitSeconds: 300,
  });
  const hour = (h: number) => `2026-01-05T${String(h).padStart(2, '0')}:00:00.000Z`;

  test('oldest first: a freed share goes to the oldest waiting backup, not to a younger one that asks first', async () => {
    const k = key();
    await acquire(store(), copies(k, 'running', hour(0), 2));
    await expect(acquire(store(), copies(k, 'older', hour(1), 2))).rejects.toThrow(BudgetExhaustedError);
    await expect(acquire(store(), copies(k, 'younger', hour(2), 2))).rejects.toThrow(BudgetExhaustedError);
    await release(store(), k, 'running');
    // The younger asks first after the release: the share is kept for the older one.
    await expect(acquire(store(), copies(k, 'younger', hour(2), 2))).rejects.toThrow(
      /2 kept for 1 older backup\(s\) waiting; younger needs 2/,
    );
    await acquire(store(), copies(k, 'older', hour(1), 2));
    const record = (await store().read(k))!.record;
    expect(Object.keys(record.leases)).toEqual(['older']);
    expect(Object.keys(record.waiters ?? {})).toEqual(['younger']);
    await release(store(), k, 'older');
    await acquire(store(), copies(k, 'younger', hour(2), 2));
    expect((await store().read(k))!.record).toEqual({ held: 2, leases: { younger: expect.anything() } });
  });

  test('a younger backup goes ahead when there is room for every older waiter too', async () => {
    const k = key();
    await acquire(store(), copies(k, 'running', hour(0), 1));
    await expect(acquire(store(), copies(k, 'big', hour(1), 2))).rejects.toThrow(BudgetExhaustedError);
    // One unit free, two kept for the older waiter: the small younger one waits as well.
    await expect(acquire(store(), copies(k, 'small', hour(2), 1))).rejects.toThrow(BudgetExhaustedError);
    await release(store(), k, 'running');
    await acquire(store(), copies(k, 'big', hour(1), 2));
    await expect(acquire(store(), copies(k, 'small', hour(2), 1))).rejects.toThrow(BudgetExhaustedError);
    await release(store(), k, 'big');
    await acquire(store(), copies(k, 'small', hour(2), 1));
    // Nobody older waits now: a younger one fits beside it.
    await acquire(store(), copies(k, 'later', hour(3), 1));
    expect((await store().read(k))!.record.held).toBe(2);
  });

  test('a waiter keeps its place from its first ask, and loses it when it stops asking', async () => {
    const k = key();
    const t0 = Date.parse('2026-01-05T06:00:00Z');
    const at = (s: number) => () => new Date(t0 + s * 1000);
    await acquire(store(), copies(k, 'running', hour(0), 2), at(0));
    await expect(acquire(store(), copies(k, 'stopped', hour(1), 2), at(1))).rejects.toThrow();
    await expect(acquire(store(), copies(k, 'asking', hour(2), 2), at(2))).rejects.toThrow();
    await release(store(), k, 'running', at(3));
    // The stopped execution's place holds for waitSeconds (300 s) after its last ask...
    await expect(acquire(store(), copies(k, 'asking', hour(2), 2), at(200))).rejects.toThrow(/older/);
    // ...and is gone after it: the queue does not wait for a dead waiter.
    await acquire(store(), copies(k, 'asking', hour(2), 2), at(302));
    expect(Object.keys((await store().read(k))!.record.leases)).toEqual(['asking']);
  });

  test('ten waiting backups racing for two copy slots over many rounds are served oldest first', async () => {
    const k = key();
    const backups = Array.from({ length: 10 }, (_, i) => ({ holder: `backup-${i}`, order: hour(i + 1) }));
    const served: string[] = [];
    const waiting = new Set(backups.map((b) => b.holder));
    // The slots are taken when they first ask: all ten wait in the queue (youngest asking first).
    await acquire(store(), copies(k, 'running', hour(0), 2));
    const first = await Promise.allSettled(
      [...backups].reverse().map((b) => acquire(store(), copies(k, b.holder, b.order))),
    );
    expect(first.every((r) => r.status === 'rejected')).toBe(true);
    await release(store(), k, 'running');
    // Every round, every waiter asks at once (in a shuffled order), then whoever got a share finishes.
    for (let round = 0; waiting.size > 0 && round < 20; round++) {
      const asking = backups.filter((b) => waiting.has(b.holder)).reverse();
      const results = await Promise.allSettled(
        asking.map((b) => acquire(store(), copies(k, b.holder, b.order))),
      );
      const granted = asking.filter((_, i) => results[i]!.status === 'fulfilled').map((b) => b.holder);
      for (const holder of granted.sort()) {
        served.push(holder);
        waiting.delete(holder);
        await release(store(), k, holder);
      }
    }
    expect(served).toEqual(backups.map((b) => b.holder));
  });

  // Woken, not polled: waiters leave their task token; a return hands them the units and answers them.
  const answered = () => {
    const answers: Array<{ token: string; output: unknown }> = [];
    return {
      answers,
      succeed: async (token: string, output: unknown) => {
        answers.push({ token, output });
      },
    };
  };
  const waiting = (k: string, holder: string, order: string, units: number, token: string) => ({
    ...copies(k, holder, order, units),
    token,
  });

  test('a return wakes the oldest waiters its units fit, in queue order; a younger one waits for the next return', async () => {
    const k = key();
    const tokens = answered();
    await takeOrWait(store(), tokens, waiting(k, 'running', hour(0), 2, 't-running'));
    const younger = await takeOrWait(store(), tokens, waiting(k, 'younger', hour(2), 1, 't-younger'));
    const older = await takeOrWait(store(), tokens, waiting(k, 'older', hour(1), 2, 't-older'));
    expect([younger.taken, older.taken]).toEqual([false, false]);
    expect(tokens.answers.map((a) => a.token)).toEqual(['t-running']);

    // Two units free: the older waiter needs both, so the younger one (who asked first) still waits.
    expect(await giveBackAndWake(store(), tokens, { key: k, limit: 2 }, 'running')).toMatchObject({
      woken: 1,
    });
    expect(tokens.answers.map((a) => a.token)).toEqual(['t-running', 't-older']);
    expect(tokens.answers[1]!.output).toEqual({ units: 2, held: 2, limit: 2 });
    await giveBackAndWake(store(), tokens, { key: k, limit: 2 }, 'older');
    expect(tokens.answers.map((a) => a.token)).toEqual(['t-running', 't-older', 't-younger']);
    const record = (await store().read(k))!.record;
    expect(record.waiters).toBeUndefined();
    expect(Object.keys(record.leases)).toEqual(['younger']);
  });

  test('a lost wake-up strands nobody: the waiter asks again when its step times out and finds the share its own', async () => {
    const k = key();
    const tokens = answered();
    await takeOrWait(store(), tokens, waiting(k, 'running', hour(0), 2, 't-running'));
    await takeOrWait(store(), tokens, waiting(k, 'waiter', hour(1), 2, 't-waiter-1'));
    // The answer to the waiter fails (its task timed out, SendTaskSuccess throttled past the SDK's retries).
    const losing = {
      succeed: async () => {
        throw Object.assign(new Error('Task Timed Out'), { name: 'TaskTimedOut' });
      },
    };
    expect(await giveBackAndWake(store(), losing, { key: k, limit: 2 }, 'running')).toMatchObject({
      woken: 1,
      lost: 1,
    });
    // States.Timeout, the step's Retry: a new attempt, a new token, answered at once.
    const again = await takeOrWait(store(), tokens, waiting(k, 'waiter', hour(1), 2, 't-waiter-2'));
    expect(again.taken).toBe(true);
    expect(tokens.answers.map((a) => a.token)).toEqual(['t-running', 't-waiter-2']);
    expect((await store().read(k))!.record.held).toBe(2);
  });

  test('a return racing a refused take (between its read and its write) cannot strand it: the take reads again and gets the share', async () => {
    const k = key();
    const tokens = answered();
    await takeOrWait(store(), tokens, waiting(k, 'running', hour(0), 2, 't-running'));
    const inner = store();
    let raced = false;
    // The taker's first write (its place in the queue, after a refusal) loses to the return that ran meanwhile.
    const racing: BudgetStore = {
      read: (key) => inner.read(key),
      write: async (key, record, version) => {
        if (!raced && record.waiters?.taker) {
          raced = true;
          await giveBackAndWake(inner, tokens, { key: k, limit: 2 }, 'running');
        }
        return inner.write(key, record, version);
      },
    };
    const taker = await takeOrWait(racing, tokens, waiting(k, 'taker', hour(1), 2, 't-taker'));
    expect(raced).toBe(true);
    expect(taker.taken).toBe(true);
    expect(tokens.answers.map((a) => a.token)).toEqual(['t-running', 't-taker']);
    const record = (await store().read(k))!.record;
    expect(Object.keys(record.leases)).toEqual(['taker']);
    expect(record.waiters).toBeUndefined();
  });

  test('units of a lapsed lease go to the waiters with the next take: the taker answers them', async () => {
    const k = key();
    const tokens = answered();
    const t0 = Date.parse('2026-01-05T00:00:00Z');
    const at = (s: number) => () => new Date(t0 + s * 1000);
    await takeOrWait(
      store(),
      tokens,
      { ...waiting(k, 'crashed', hour(0), 2, 't-crashed'), leaseSeconds: 60 },
      at(0),
    );
    await takeOrWait(store(), tokens, waiting(k, 'waiter', hour(1), 2, 't-waiter'), at(10));
    const late = await takeOrWait(store(), tokens, waiting(k, 'late', hour(2), 1, 't-late'), at(61));
    expect(late).toMatchObject({ taken: false, woken: 1 });
    expect(tokens.answers.map((a) => a.token)).toEqual(['t-crashed', 't-waiter']);
  });
}
