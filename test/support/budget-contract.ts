/**
 * What any budget store must make true, run against each store: in memory
 * (test/unit/budget.test.ts) and DynamoDB in moto_server
 * (test/integration/aws-contract-budget.test.ts). Concurrent takers never hold
 * more than the budget, a retried take is one share, a return frees it, and a
 * share never returned lapses with its lease.
 */
import { expect, test } from 'vitest';
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
}
