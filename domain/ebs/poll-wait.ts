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
 * has no rate yet, and the wait is its age so far (the polls double, as
 * before); and every wait is bounded by `firstPollSeconds` below and
 * `maxPollSeconds` above, so a wrong prediction costs at most one long wait.
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

/** The seconds one pending snapshot is predicted to need still. */
function remainingSeconds(reading: SnapshotReading, now: Date, since: Date, last?: PollMemory): number {
  const percent = percentOf(reading.progress);
  const ageSeconds = Math.max(0, (now.getTime() - (reading.startTime ?? since).getTime()) / 1000);
  if (percent >= 100) return 0; // pending at 100 %: completes any moment
  const before = last?.seen.find((s) => s.snapshotId === reading.snapshotId)?.percent;
  const sinceLastSeconds = last ? (now.getTime() - Date.parse(last.at)) / 1000 : 0;
  if (before !== undefined && percent > before && sinceLastSeconds > 0) {
    // Moving since the last poll: its current rate.
    return ((100 - percent) * sinceLastSeconds) / (percent - before);
  }
  if (percent === 0) return ageSeconds; // no rate yet: wait as long again as it has run
  return ((100 - percent) * ageSeconds) / percent; // its average rate since StartTime
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
