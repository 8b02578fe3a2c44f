/**
 * Retention of backups whose snapshots are EBS snapshots (at the source, or
 * the DR copies in the DR account): the SnapshotDeleter that
 * `applyRetention` calls, and the policy run for one cluster at the source
 * and in DR, each with its own policy and its own EC2.
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import { applyRetention, type RetentionPolicy, type SnapshotDeleter } from '../backup/retention.ts';
import type { Manifest } from '../repository/manifest.ts';
import type { Repository } from '../repository/repository.ts';
import { deleteSnapshotUnlessLocked } from './snapshots.ts';

/**
 * Deletes a backup's EBS snapshots. A snapshot under an EBS snapshot lock is
 * reported as locked (the backup then stays), not an error; one already gone
 * is fine (retention may run twice). Other providers' snapshots are not EBS's
 * to delete and are left to the host (`pgsnap retention`).
 */
export function ebsSnapshotDeleter(ec2: EC2Client): SnapshotDeleter {
  return async (manifest: Manifest) => {
    const locked: string[] = [];
    for (const snapshot of manifest.snapshots) {
      if (snapshot.provider !== 'ebs' || snapshot.state === 'deleted') continue;
      if ((await deleteSnapshotUnlessLocked(ec2, snapshot.snapshotId)) === 'locked') {
        locked.push(snapshot.snapshotId);
      }
    }
    return { locked };
  };
}

export interface RetentionSummary {
  repository: string;
  kept: string[];
  removed: string[];
  lockedSnapshots: Array<{ backupId: string; snapshotIds: string[] }>;
  removedWal: number;
  walFrom?: string;
}

/** Applies `policy` to one repository whose snapshots live in `ec2`'s account and region. */
export async function applyEbsRetention(
  repository: Repository,
  ec2: EC2Client,
  policy: RetentionPolicy,
  options: { now?: Date; dryRun?: boolean } = {},
): Promise<RetentionSummary> {
  const result = await applyRetention(repository, {
    policy,
    dryRun: options.dryRun ?? false,
    deleteSnapshots: ebsSnapshotDeleter(ec2),
    ...(options.now ? { now: options.now } : {}),
  });
  return {
    repository: repository.url,
    kept: result.keep.map((k) => k.backupId),
    removed: result.remove.map((r) => r.backupId),
    lockedSnapshots: result.lockedSnapshots,
    removedWal: result.removeWal.length,
    ...(result.walFrom ? { walFrom: result.walFrom } : {}),
  };
}
