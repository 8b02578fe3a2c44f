/**
 * Thinning (grandfather-father-son): one backup per hour for the last H hours,
 * per day for the last D days, per week for the last W weeks, per month for the
 * last M months. In each calendar bucket (UTC hour, UTC day, ISO week from
 * Monday, UTC month) the newest completed backup is the one kept, so a backup
 * that is kept for its month was also kept for its week and day: thinning is
 * stable, and what it removes today it would never have kept later.
 *
 * It bounds what a cluster keeps, whatever its cadence: at most H+1 + D+1 +
 * W+1 + M+1 backups, which is how `cdk synth` and `doctor` project snapshots
 * per Region against EBS's 100,000 (see {@link thinnedCount}).
 */
import * as z from '../zod.ts';

export const thinningSchema = z.strictObject({
  /** One backup per hour for this many hours. */
  hours: z.optional(z.int().check(z.gte(0), z.lte(8_760))),
  /** One backup per day for this many days. */
  days: z.optional(z.int().check(z.gte(0), z.lte(3_660))),
  /** One backup per week for this many weeks. */
  weeks: z.optional(z.int().check(z.gte(0), z.lte(520))),
  /** One backup per month for this many months. */
  months: z.optional(z.int().check(z.gte(0), z.lte(1_200))),
});
export type Thinning = z.infer<typeof thinningSchema>;

const hour = 3_600_000;
const day = 24 * hour;

type Tier = { size: keyof Thinning; bucket: (t: number) => number; since: (now: Date, n: number) => number };

/** The start of a UTC month `back` months before `now`'s month. */
function monthsBack(now: Date, back: number): number {
  return Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - back, 1);
}

const tiers: Tier[] = [
  { size: 'hours', bucket: (t) => Math.floor(t / hour), since: (now, n) => now.getTime() - n * hour },
  { size: 'days', bucket: (t) => Math.floor(t / day), since: (now, n) => now.getTime() - n * day },
  {
    size: 'weeks',
    // 1970-01-01 was a Thursday: shift by three days so that buckets start on Mondays (ISO weeks).
    bucket: (t) => Math.floor((t + 3 * day) / (7 * day)),
    since: (now, n) => now.getTime() - n * 7 * day,
  },
  {
    size: 'months',
    bucket: (t) => {
      const d = new Date(t);
      return d.getUTCFullYear() * 12 + d.getUTCMonth();
    },
    // The current month counts as one of the M: M months back from the start of the next one.
    since: (now, n) => monthsBack(now, n - 1),
  },
];

/** Whether a thinning keeps anything at all. */
export function thinningKeepsSomething(thin: Thinning | undefined): boolean {
  return thin !== undefined && Object.values(thin).some((n) => n !== undefined && n > 0);
}

/**
 * The backups that thinning keeps among `backups` (completed ones, each with the
 * time it started), by the tier that keeps each first (hourly, daily, weekly,
 * monthly). Backups from the future (clock skew) are in the current bucket.
 */
export function thin<T extends { backupId: string; startedAt: string }>(
  backups: readonly T[],
  policy: Thinning,
  now: Date,
): Map<string, keyof Thinning> {
  const kept = new Map<string, keyof Thinning>();
  const sorted = [...backups].sort((a, b) => Date.parse(a.startedAt) - Date.parse(b.startedAt));
  for (const tier of tiers) {
    const n = policy[tier.size];
    if (n === undefined || n <= 0) continue;
    const since = tier.since(now, n);
    const newestIn = new Map<number, T>();
    for (const b of sorted) {
      const t = Math.min(Date.parse(b.startedAt), now.getTime());
      if (t < since) continue;
      newestIn.set(tier.bucket(t), b);
    }
    for (const b of newestIn.values()) if (!kept.has(b.backupId)) kept.set(b.backupId, tier.size);
  }
  return kept;
}

/**
 * The most backups a thinning keeps, whatever the cadence, when backups come
 * every `everyHours` hours: per tier, the buckets its window touches (its
 * length + 1), but never more than the backups taken in that window.
 */
export function thinnedCount(policy: Thinning, everyHours: number): number {
  const windows: Record<keyof Thinning, number> = { hours: 1, days: 24, weeks: 168, months: 744 };
  let count = 0;
  for (const size of Object.keys(windows) as Array<keyof Thinning>) {
    const n = policy[size];
    if (n === undefined || n <= 0) continue;
    const buckets = n + 1;
    const taken = Math.ceil((n * windows[size]) / everyHours) + 1;
    count += Math.min(buckets, taken);
  }
  return count;
}
