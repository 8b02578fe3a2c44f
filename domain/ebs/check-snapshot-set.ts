/**
 * Following a snapshot set until every snapshot is completed: one poll per
 * step, the wait before the next predicted from EBS's Progress (poll-wait.ts),
 * a missing or failed snapshot failing the backup, and a set that takes too
 * long abandoned.
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import { SnapshotFailedError, TimeoutError } from '../errors.ts';
import { memoryOf, nextPollSeconds, type PollMemory, type SnapshotReading } from './poll-wait.ts';
import { type SnapshotSet, snapshotsById, visibilityGraceMs } from './snapshots.ts';

export interface PollSettings {
  /** The shortest wait between polls. */
  firstPollSeconds: number;
  /** The longest wait between polls, however far EBS says the snapshots still have to go. */
  maxPollSeconds: number;
  /** Snapshots not completed this long after creation fail the backup. */
  snapshotHours: number;
}

export interface SnapshotProgress extends PollMemory {
  completed: boolean;
  /** Polls so far, this one included. */
  attempt: number;
  /** How long to wait before the next poll: the predicted remaining time, bounded (poll-wait.ts). */
  waitSeconds: number;
  /** Lowest progress across the set, as EC2 reports it ("42%"). */
  progress: string;
}

/** One poll of the set: completed, still pending, or failed (SnapshotFailedError, TimeoutError). */
export async function checkSnapshotSet(
  ec2: EC2Client,
  request: { set: SnapshotSet; attempt: number; settings: PollSettings; now?: Date; last?: PollMemory },
): Promise<SnapshotProgress> {
  const ids = request.set.snapshots.map((s) => s.snapshotId);
  const snapshots = await snapshotsById(ec2, ids);
  const missing = ids.filter((id) => !snapshots.some((s) => s.SnapshotId === id));
  const now = request.now ?? new Date();
  const sinceCreated = now.getTime() - new Date(request.set.createdAt).getTime();
  if (missing.length > 0 && sinceCreated > visibilityGraceMs) {
    throw new SnapshotFailedError(
      `snapshot ${missing.join(', ')} no longer exists (DescribeSnapshots does not find it ` +
        `${Math.round(sinceCreated / 60_000)} min after it was taken); the backup is not valid`,
    );
  }
  const failed = snapshots.find((s) => s.State === 'error');
  if (failed) {
    throw new SnapshotFailedError(
      `snapshot ${failed.SnapshotId} of volume ${failed.VolumeId} is in state error` +
        `${failed.StateMessage ? ` (${failed.StateMessage})` : ''}; the backup is not valid`,
    );
  }
  const attempt = request.attempt + 1;
  // A snapshot not visible yet (within the grace) is taken for pending.
  const completed = missing.length === 0 && snapshots.every((s) => s.State === 'completed');
  const progress = [
    ...snapshots.map((s) => Number.parseInt(s.Progress ?? '0', 10) || 0),
    ...missing.map(() => 0),
  ];
  if (!completed && sinceCreated > request.settings.snapshotHours * 3_600_000) {
    throw new TimeoutError(
      `snapshots ${ids.join(', ')} are not completed ${request.settings.snapshotHours}h after they were taken ` +
        `(lowest progress ${Math.min(...progress)}%); the backup is abandoned`,
    );
  }
  const readings: SnapshotReading[] = ids.map((id) => {
    const s = snapshots.find((found) => found.SnapshotId === id);
    return { snapshotId: id, state: s?.State, progress: s?.Progress, startTime: s?.StartTime };
  });
  return {
    completed,
    attempt,
    waitSeconds: nextPollSeconds(readings, request.settings, {
      now,
      since: new Date(request.set.createdAt),
      last: request.last,
    }),
    progress: `${Math.min(...progress)}%`,
    ...memoryOf(readings, now),
  };
}
