/**
 * How long to wait before the next poll of snapshots (a backup's set, or its
 * DR copies): as long as EBS's own figures say is left, bounded. Every poll is
 * about three billed state transitions (the check, the Choice, the Wait), so
 * polling on a fixed doubling schedule costs more than the rest of a backup;
 * waiting for the predicted remaining time costs two or three polls.
 *
 * What the prediction reads (DescribeSnapshots, the Snapshot data type:
 * local/aws-facts.ts `snapshotProgress` quotes the fields): `State`
 * (pending | completed | error | recoverable | recovering), `Progress` ("The
 * progress of the snapshot, as a percentage", a string such as "42%") and
 * `StartTime` ("The time stamp when the snapshot was initiated").
 *
 * Progress is not linear in time, and is no promise: a snapshot may sit at 0 %
 * while EBS prepares it, and the snapshots of one multi-volume set "progress
 * independently" but stay at 99 % until the last of them completes (AWS's
 * knowledge center, quoted in aws-facts.ts). So the rate is taken from the
 * last two polls when the snapshot moved between them (what it does now, not
 * what it did while it sat at 0 %), otherwise from StartTime; a snapshot at 0 %
 * has no rate yet; no wait is longer than the snapshot's age (see
 * remainingSeconds); and every wait is bounded by `firstPollSeconds` below and
 * `maxPollSeconds` above. bench/fleet measures the choice against an EBS that
 * reports Progress with these bends (bench/README.md).
 */

/** The bounds of the wait, from the configuration (timeouts.firstPollSeconds, timeouts.maxPollSeconds). */
export interface PollBounds {
  firstPollSeconds: number;
  maxPollSeconds: number;
}

/** One snapshot as DescribeSnapshots reported it at a poll. */
export interface SnapshotReading {
  snapshotId: string;
  state?: string;
  /** EC2's Progress string ("42%"); absent or unparsable is 0. */
  progress?: string;
  /** EC2's StartTime; absent (a snapshot not visible yet) means the set's own start. */
  startTime?: Date;
}

/** What a poll keeps for the next one: when it looked, and each snapshot's percentage then. */
export interface PollMemory {
  at: string;
  seen: Array<{ snapshotId: string; percent: number }>;
}

/** EC2's Progress string as a number from 0 to 100. */
export function percentOf(progress: string | undefined): number {
  const value = Number.parseInt(progress ?? '0', 10);
  return Number.isFinite(value) ? Math.min(100, Math.max(0, value)) : 0;
}

/**
 * The seconds one pending snapshot is predicted to need still: at its rate
 * since the last poll when it moved (from 0 %, it is taken to have started
 * moving halfway between the polls), otherwise at its average rate since
 * StartTime; at 0 % it has no rate, and it waits half as long again as it has
 * run. Never more than its age: a prediction misled by Progress's bends at
 * most doubles the time until its completion is seen, as the doubling
 * pauses did.
 */
function remainingSeconds(reading: SnapshotReading, now: Date, since: Date, last?: PollMemory): number {
  const percent = percentOf(reading.progress);
  const ageSeconds = Math.max(0, (now.getTime() - (reading.startTime ?? since).getTime()) / 1000);
  if (percent >= 100) return 0; // pending at 100 %: completes any moment
  if (percent === 0) return 1.5 * ageSeconds;
  const before = last?.seen.find((s) => s.snapshotId === reading.snapshotId)?.percent;
  const sinceLastSeconds = last ? (now.getTime() - Date.parse(last.at)) / 1000 : 0;
  const predicted =
    before !== undefined && percent > before && sinceLastSeconds > 0
      ? ((100 - percent) * (before === 0 ? sinceLastSeconds / 2 : sinceLastSeconds)) / (percent - before)
      : ((100 - percent) * ageSeconds) / percent;
  return Math.min(predicted, ageSeconds);
}

/**
 * The wait before the next poll: the longest predicted remaining time over the
 * snapshots not completed (the set is done when its slowest is), within
 * [firstPollSeconds, maxPollSeconds], in whole seconds (a Wait state's
 * SecondsPath). `since` stands for the StartTime of a snapshot not visible yet.
 */
export function nextPollSeconds(
  readings: SnapshotReading[],
  bounds: PollBounds,
  request: { now: Date; since: Date; last?: PollMemory },
): number {
  const pending = readings.filter((r) => r.state !== 'completed');
  const predicted = Math.max(
    0,
    ...pending.map((r) => remainingSeconds(r, request.now, request.since, request.last)),
  );
  return Math.ceil(Math.min(bounds.maxPollSeconds, Math.max(bounds.firstPollSeconds, predicted)));
}

/** What this poll keeps for the next. */
export function memoryOf(readings: SnapshotReading[], now: Date): PollMemory {
  return {
    at: now.toISOString(),
    seen: readings.map((r) => ({ snapshotId: r.snapshotId, percent: percentOf(r.progress) })),
  };
}
