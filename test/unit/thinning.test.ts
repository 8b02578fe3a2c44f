/**
 * Grandfather-father-son thinning over random histories: in each hour, day,
 * ISO week and month of its window the newest backup is kept and no other,
 * what it keeps is bounded whatever the cadence, and thinning in steps (every
 * hour, as the schedules run it) keeps exactly what thinning once would.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { projectedBackups } from '#domain/backup/retention';
import { type Thinning, thin, thinnedCount } from '#domain/backup/thinning';

const hour = 3_600_000;
const start = Date.parse('2025-01-01T00:00:00Z');

/** Backups at random gaps (minutes to days), oldest first. */
const historyArb = fc
  .array(fc.integer({ min: 1, max: 3 * 24 * 60 }), { minLength: 1, maxLength: 120 })
  .map((gaps) => {
    let t = start;
    return gaps.map((minutes, i) => {
      t += minutes * 60_000;
      return { backupId: `b${i.toString().padStart(4, '0')}`, startedAt: new Date(t).toISOString() };
    });
  });

const thinningArb: fc.Arbitrary<Thinning> = fc.record({
  hours: fc.integer({ min: 0, max: 48 }),
  days: fc.integer({ min: 0, max: 14 }),
  weeks: fc.integer({ min: 0, max: 8 }),
  months: fc.integer({ min: 0, max: 6 }),
});

const bucketOf = {
  hours: (t: number) => Math.floor(t / hour),
  days: (t: number) => new Date(t).toISOString().slice(0, 10),
  weeks: (t: number) => {
    // The Monday that starts t's ISO week.
    const d = new Date(t);
    const monday = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() - ((d.getUTCDay() + 6) % 7));
    return monday;
  },
  months: (t: number) => new Date(t).toISOString().slice(0, 7),
};

function windowStart(size: keyof Thinning, n: number, now: Date): number {
  if (size === 'hours') return now.getTime() - n * hour;
  if (size === 'days') return now.getTime() - n * 24 * hour;
  if (size === 'weeks') return now.getTime() - n * 7 * 24 * hour;
  return Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - (n - 1), 1);
}

describe('thinning', () => {
  it('keeps the newest backup of every hour, day, ISO week and month in its window, and nothing else', () => {
    fc.assert(
      fc.property(historyArb, thinningArb, fc.integer({ min: 0, max: 72 }), (history, policy, after) => {
        const now = new Date(Date.parse(history.at(-1)!.startedAt) + after * hour);
        const kept = thin(history, policy, now);
        const expected = new Set<string>();
        for (const size of ['hours', 'days', 'weeks', 'months'] as const) {
          const n = policy[size] ?? 0;
          if (n === 0) continue;
          const newest = new Map<unknown, string>();
          for (const b of history) {
            const t = Date.parse(b.startedAt);
            if (t >= windowStart(size, n, now)) newest.set(bucketOf[size](t), b.backupId);
          }
          for (const id of newest.values()) expected.add(id);
        }
        expect(new Set(kept.keys())).toEqual(expected);
        const { hours = 0, days = 0, weeks = 0, months = 0 } = policy;
        const bound = [hours, days, weeks, months].reduce((sum, n) => sum + (n > 0 ? n + 1 : 0), 0);
        expect(kept.size).toBeLessThanOrEqual(bound);
      }),
      { numRuns: 300 },
    );
  });

  it('thinned hour by hour keeps exactly what one thinning at the end keeps', () => {
    fc.assert(
      fc.property(historyArb, thinningArb, (history, policy) => {
        const end = Date.parse(history.at(-1)!.startedAt) + hour;
        let held: typeof history = [];
        let next = 0;
        // Each hour: the backups taken since join, then retention runs (as after every backup).
        for (let now = start + hour; now < end + hour; now += hour) {
          now = Math.min(now, end);
          while (next < history.length && Date.parse(history[next]!.startedAt) <= now)
            held.push(history[next++]!);
          const kept = thin(held, policy, new Date(now));
          held = held.filter((b) => kept.has(b.backupId));
        }
        expect(held.map((b) => b.backupId)).toEqual(
          history.filter((b) => thin(history, policy, new Date(end)).has(b.backupId)).map((b) => b.backupId),
        );
      }),
      { numRuns: 60 },
    );
  });

  it('projects at most what an hourly cadence over a year would keep, and what the rules together bound', () => {
    fc.assert(
      fc.property(thinningArb, fc.constantFrom(1, 2, 6, 24), (policy, everyHours) => {
        const backups = Array.from({ length: (24 * 400) / everyHours }, (_, i) => ({
          backupId: `b${i}`,
          startedAt: new Date(start + i * everyHours * hour).toISOString(),
        }));
        const now = new Date(start + 24 * 400 * hour);
        expect(thin(backups, policy, now).size).toBeLessThanOrEqual(thinnedCount(policy, everyHours));
      }),
      { numRuns: 100 },
    );
    // Hourly backups for 500 clusters of 2 volumes: 7 days of everything is 168,000 snapshots (over
    // EBS's 100,000 per Region); 24 hourly, 7 daily, 4 weekly and 12 monthly is about 49,000.
    expect(500 * 2 * projectedBackups({ keepDays: 7 }, 1)).toBeGreaterThan(100_000);
    expect(
      500 * 2 * projectedBackups({ thin: { hours: 24, days: 7, weeks: 4, months: 12 } }, 1),
    ).toBeLessThan(100_000);
  });
});
