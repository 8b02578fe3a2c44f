/**
 * Following a snapshot set until every snapshot is completed: one poll per
 * step, the wait between polls doubling up to a maximum, a missing or failed
 * snapshot failing the backup, and a set that takes too long abandoned.
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import { SnapshotFailedError, TimeoutError } from '../errors.ts';
import { type SnapshotSet, snapshotsById, visibilityGraceMs } from './snapshots.ts';

export interface PollSettings {
  firstPollSeconds: number;
  maxPollSeconds: number;
  /** Snapshots not completed this long after creation fail the backup. */
  snapshotHours: number;
}

export interface SnapshotProgress {
  completed: boolean;
  /** Polls so far, this one included. */
  attempt: number;
  /** How long to wait before the next poll: doubles from the first wait up to the maximum. */
  waitSeconds: number;
  /** Lowest progress across the set, as EC2 reports it ("42%"). */
  progress: string;
}

/** The wait before poll number `attempt + 1`. */
export function nextWaitSeconds(attempt: number, settings: PollSettings): number {
  return Math.min(settings.maxPollSeconds, settings.firstPollSeconds * 2 ** Math.max(0, attempt - 1));
}

/** One poll of the set: completed, still pending, or failed (SnapshotFailedError, TimeoutError). */
export async function checkSnapshotSet(
  ec2: EC2Client,
  request: { set: SnapshotSet; attempt: number; settings: PollSettings; now?: Date },
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
  return {
    completed,
    attempt,
    waitSeconds: nextWaitSeconds(attempt, request.settings),
    progress: `${Math.min(...progress)}%`,
  };
}
