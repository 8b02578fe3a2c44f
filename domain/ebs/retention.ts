/**
 * Retention of backups whose snapshots are EBS snapshots (at the source, or
 * the DR copies in the DR account): the SnapshotDeleter that
 * `applyRetention` calls, and the policy run for one cluster at the source
 * and in DR, each with its own policy and its own EC2.
 *
 * A manifest is written by the database host, which may be compromised;
 * the snapshots' tags are not: only the CreateSnapshots and CopySnapshot
 * steps set them (the hosts have no EC2 rights, see infra/guards/agent-host-policy.ts).
 * So retention believes a manifest only as far as its snapshots' own tags
 * (cluster and backupId) agree with it, and deletes no snapshot whose tags
 * name another cluster or backup, whatever a manifest says.
 */
import type { EC2Client, Snapshot } from '@aws-sdk/client-ec2';
import {
  applyRetention,
  type ManifestVerifier,
  type RetentionPolicy,
  type SnapshotDeleter,
} from '../backup/retention.ts';
import type { Manifest } from '../repository/manifest.ts';
import type { Repository } from '../repository/repository.ts';
import { deleteSnapshotUnlessLocked } from './delete-snapshots.ts';
import { snapshotsById, snapshotsOfBackup, snapshotTags } from './snapshots.ts';

const liveEbsIds = (manifest: Manifest): string[] =>
  manifest.snapshots.filter((s) => s.provider === 'ebs' && s.state !== 'deleted').map((s) => s.snapshotId);

const tagOf = (snapshot: Snapshot, key: string): string | undefined =>
  snapshot.Tags?.find((t) => t.Key === key)?.Value;

/** Why `snapshot` is not one of `manifest`'s backup of `cluster`, or undefined when it is. */
function mismatch(snapshot: Snapshot, cluster: string, manifest: Manifest): string | undefined {
  const tagged = {
    cluster: tagOf(snapshot, snapshotTags.cluster),
    backupId: tagOf(snapshot, snapshotTags.backupId),
  };
  if (tagged.cluster === cluster && tagged.backupId === manifest.backupId) return undefined;
  return (
    `snapshot ${snapshot.SnapshotId} is tagged ${snapshotTags.cluster}=${tagged.cluster ?? '(none)'}, ` +
    `${snapshotTags.backupId}=${tagged.backupId ?? '(none)'}, not ${cluster} and ${manifest.backupId}`
  );
}

/**
 * Every manifest whose EBS snapshots contradict it: a snapshot tagged for
 * another cluster or backup; for a completed backup also a snapshot that
 * does not exist or is not completed (it cannot be restored, so it must not
 * count among the backups the policy keeps).
 */
export function ebsManifestVerifier(ec2: EC2Client, cluster: string): ManifestVerifier {
  return async (manifests) => {
    const ids = [...new Set(manifests.flatMap(liveEbsIds))];
    const described = new Map<string, Snapshot>();
    for (let i = 0; i < ids.length; i += 200) {
      for (const s of await snapshotsById(ec2, ids.slice(i, i + 200))) described.set(s.SnapshotId!, s);
    }
    const problems = new Map<string, string>();
    for (const manifest of manifests) {
      for (const id of liveEbsIds(manifest)) {
        const snapshot = described.get(id);
        const problem = snapshot
          ? (mismatch(snapshot, cluster, manifest) ??
            (manifest.state === 'completed' && snapshot.State !== 'completed'
              ? `snapshot ${id} of a completed backup is ${snapshot.State}`
              : undefined))
          : manifest.state === 'completed'
            ? `snapshot ${id} of a completed backup does not exist`
            : undefined;
        if (problem) {
          problems.set(manifest.backupId, problem);
          break;
        }
      }
      // A backup given up has no completed snapshot left (the cleanup deletes them): EC2 saying otherwise
      // means the manifest is not the orchestrator's account, and nothing is acted on by it.
      if ((manifest.state === 'failed' || manifest.state === 'aborted') && !problems.has(manifest.backupId)) {
        const completed = (await snapshotsOfBackup(ec2, manifest.backupId)).find(
          (s) => s.State === 'completed' && tagOf(s, snapshotTags.cluster) === cluster,
        );
        if (completed) {
          problems.set(
            manifest.backupId,
            `its manifest says ${manifest.state}, but EC2 has its snapshot ${completed.SnapshotId} completed`,
          );
        }
      }
    }
    return problems;
  };
}

/**
 * Deletes a backup's EBS snapshots. A snapshot under an EBS snapshot lock is
 * reported as locked (the backup then stays), not an error; one already gone
 * is fine (retention may run twice). Other providers' snapshots are not EBS's
 * to delete and are left to the host (`pgsnap retention`).
 */
export function ebsSnapshotDeleter(ec2: EC2Client, cluster: string): SnapshotDeleter {
  return async (manifest: Manifest) => {
    const ids = liveEbsIds(manifest);
    if (ids.length === 0) return { locked: [] };
    // Checked right before deleting, all of them first: a backup is deleted whole or not at all.
    const refused = (await snapshotsById(ec2, ids))
      .filter((s) => mismatch(s, cluster, manifest) !== undefined)
      .map((s) => s.SnapshotId!);
    if (refused.length > 0) return { locked: [], refused };
    const locked: string[] = [];
    for (const id of ids) {
      if ((await deleteSnapshotUnlessLocked(ec2, id)) === 'locked') locked.push(id);
    }
    return { locked };
  };
}

export interface RetentionSummary {
  repository: string;
  kept: string[];
  removed: string[];
  lockedSnapshots: Array<{ backupId: string; snapshotIds: string[] }>;
  /** Kept because the snapshots' tags contradict the manifest (a manifest a host forged, or a bug). */
  unverified: Array<{ backupId: string; reason: string }>;
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
    deleteSnapshots: ebsSnapshotDeleter(ec2, repository.cluster),
    verify: ebsManifestVerifier(ec2, repository.cluster),
    ...(options.now ? { now: options.now } : {}),
  });
  return {
    repository: repository.url,
    kept: result.keep.map((k) => k.backupId),
    removed: result.remove.map((r) => r.backupId),
    lockedSnapshots: result.lockedSnapshots,
    unverified: result.unverified,
    removedWal: result.removeWal.length,
    ...(result.walFrom ? { walFrom: result.walFrom } : {}),
  };
}
