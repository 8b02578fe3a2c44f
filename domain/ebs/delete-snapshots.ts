/**
 * Deleting snapshots: a failed backup's whole set, found by its tags so that a
 * set whose creating step never returned is deleted too, and one snapshot at
 * a time for retention, which leaves a locked snapshot where it is.
 */
import {
  DeleteSnapshotCommand,
  DescribeLockedSnapshotsCommand,
  type DescribeLockedSnapshotsCommandOutput,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { snapshotsOfBackup } from './snapshots.ts';

/**
 * Deletes every snapshot tagged with the backupId, found by tag rather than by
 * the ids the state machine knows, so a set whose creating step never returned
 * is deleted too. EC2's errors keep their names, for the step's Retry.
 */
export async function deleteSnapshotSet(
  ec2: EC2Client,
  request: { backupId: string },
): Promise<{ deleted: string[] }> {
  const snapshots = await snapshotsOfBackup(ec2, request.backupId);
  const deleted: string[] = [];
  for (const snapshot of snapshots) {
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshot.SnapshotId }));
    deleted.push(snapshot.SnapshotId!);
  }
  return { deleted };
}

/** Lock states in which EC2 refuses to delete the snapshot (EC2 API reference, LockedSnapshotsInfo). */
const deleteRefusingLockStates = new Set(['compliance-cooloff', 'governance', 'compliance']);

/**
 * Deletes one snapshot: `deleted`, `gone` when it no longer exists
 * (InvalidSnapshot.NotFound: retention may run twice), or `locked` when it is
 * under an EBS snapshot lock. The error EC2 answers a delete of a locked
 * snapshot with is not among its documented error codes, so a failed delete is
 * not judged by its name: DescribeLockedSnapshots says whether the snapshot is
 * locked (state compliance-cooloff, governance or compliance; `expired` is not
 * locked). Any other failure keeps its error, for the step's Retry.
 */
export async function deleteSnapshotUnlessLocked(
  ec2: EC2Client,
  snapshotId: string,
): Promise<'deleted' | 'gone' | 'locked'> {
  try {
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
    return 'deleted';
  } catch (error) {
    if ((error as Error).name === 'InvalidSnapshot.NotFound') return 'gone';
    let answer: DescribeLockedSnapshotsCommandOutput;
    try {
      answer = await ec2.send(new DescribeLockedSnapshotsCommand({ SnapshotIds: [snapshotId] }));
    } catch (describeError) {
      throw new Error(
        `DeleteSnapshot of ${snapshotId} failed (${(error as Error).name}: ${(error as Error).message}), ` +
          `and DescribeLockedSnapshots could not tell whether it is locked (${(describeError as Error).name}); ` +
          'allow ec2:DescribeLockedSnapshots to the role',
        { cause: error },
      );
    }
    const lock = answer.Snapshots?.find((s) => s.SnapshotId === snapshotId);
    if (lock?.LockState && deleteRefusingLockStates.has(lock.LockState)) return 'locked';
    throw error;
  }
}
