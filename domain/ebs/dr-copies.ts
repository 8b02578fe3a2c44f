/**
 * Disaster-recovery copies of a completed backup (issue 5): its EBS snapshots
 * copied into the DR region, or into the DR account, which then owns them and
 * has re-encrypted them with its own key; its artifacts, cluster.json and a
 * DR-side manifest written to the DR repository. The WAL gets there by S3
 * replication, not here.
 *
 * Across accounts, EBS copies a snapshot only when it is shared with the
 * destination account (createVolumePermission) and the destination may use
 * the key that encrypts it: a KMS grant on the source key to the DR role.
 * Snapshots encrypted with the AWS managed key `aws/ebs` cannot be shared at
 * all (https://docs.aws.amazon.com/ebs/latest/userguide/ebs-modifying-snapshot-permissions.html).
 * Once the copies are done, or given up, the sharing and the grants are taken
 * back.
 *
 * A failed copy never fails the backup: the source manifest stays completed
 * and records the copy as failed; the DR-side manifest is marked failed and
 * names the copies, which DR retention deletes from the DR account: nothing
 * here deletes in DR.
 */
import { CopySnapshotCommand, type EC2Client, type Snapshot } from '@aws-sdk/client-ec2';
import { CopyFailedError, ManifestStateError, TimeoutError } from '../errors.ts';
import { checkClusterPin } from '../repository/cluster-pin.ts';
import type { Manifest, ManifestCopy } from '../repository/manifest.ts';
import type { Repository } from '../repository/repository.ts';
import type { PollSettings } from './check-snapshot-set.ts';
import { type SourceClients, shareWithDrAccount } from './dr-sharing.ts';
import { type DrTarget, isCrossAccount } from './dr-target.ts';
import { memoryOf, nextPollSeconds, type PollMemory, type SnapshotReading } from './poll-wait.ts';
import {
  type SnapshotOfSet,
  snapshotsById,
  snapshotsOfBackup,
  snapshotTags,
  visibilityGraceMs,
} from './snapshots.ts';

/**
 * CopySnapshot's CompletionDurationMinutes, a time-based copy: "between 15
 * minutes and 48 hours ... in 15 minute increments"
 * (docs.aws.amazon.com/ebs/latest/userguide/time-based-copies.html; the
 * API reference: 15–2880). The throughput a time-based copy uses is its data
 * over the duration, at most 500 MiB/s per copy and 2,000 MiB/s for all
 * time-based copies between two Regions (adjustable); past that EBS does not
 * refuse the copy, it finishes late and emits copyMissedCompletionDuration,
 * which the copy-lag alarm sees. The copy budget (at most 20 copies at once)
 * and this duration bound the pair's throughput; docs/dr.md says how to size it.
 */
export const timeBasedCopy = { minMinutes: 15, maxMinutes: 2_880, stepMinutes: 15 } as const;

/**
 * The completion duration of a DR copy started `now` of a backup taken at
 * `backupTime`, so that it is in DR within `rpoMinutes` of the backup: what is
 * left of the RPO, rounded down to 15 minutes, and never under 15 (a copy that
 * waited past its RPO is asked for as soon as EBS allows) nor over 48 hours.
 */
export function completionDurationMinutes(rpoMinutes: number, backupTime: Date, now: Date): number {
  const { minMinutes, maxMinutes, stepMinutes } = timeBasedCopy;
  const leftMinutes = rpoMinutes - (now.getTime() - backupTime.getTime()) / 60_000;
  const stepped = Math.floor(leftMinutes / stepMinutes) * stepMinutes;
  return Math.min(maxMinutes, Math.max(minMinutes, stepped));
}

/** Tag on a DR copy naming the snapshot it was copied from. */
export const copyTags = { sourceSnapshotId: 'pgsnap:source-snapshot-id' } as const;

/** The copies of one backup while they are made: what the later steps need to follow and clean up. */
export interface DrCopySet {
  account: string;
  region: string;
  copies: ManifestCopy[];
  /** When the copies were started: the copy timeout counts from here. */
  startedAt: string;
}

export function sourceIdOf(snapshot: Snapshot): string | undefined {
  return snapshot.Tags?.find((t) => t.Key === copyTags.sourceSnapshotId)?.Value;
}

/**
 * Starts the copies of a completed backup's snapshots in the DR region (and
 * account). A repeated call finds the copies already started by their tags
 * and starts only the missing ones.
 */
export async function startDrCopies(
  clients: { source: SourceClients; drEc2: EC2Client },
  request: {
    target: DrTarget;
    cluster: string;
    backupId: string;
    snapshots: SnapshotOfSet[];
    /** When the snapshots were taken: with the target's rpoMinutes, the copies are time-based from it. */
    backupTime?: string;
    now?: Date;
  },
): Promise<DrCopySet> {
  const { target, cluster, backupId } = request;
  const now = request.now ?? new Date();
  const duration =
    target.rpoMinutes !== undefined && request.backupTime !== undefined
      ? completionDurationMinutes(target.rpoMinutes, new Date(request.backupTime), now)
      : undefined;
  const sourceIds = request.snapshots.map((s) => s.snapshotId);
  if (isCrossAccount(target)) await shareWithDrAccount(clients.source, target, backupId, sourceIds);
  const existing = await snapshotsOfBackup(clients.drEc2, backupId);
  const copies: ManifestCopy[] = [];
  for (const snapshot of request.snapshots) {
    const already = existing.find((s) => sourceIdOf(s) === snapshot.snapshotId);
    const snapshotId =
      already?.SnapshotId ??
      (
        await clients.drEc2.send(
          new CopySnapshotCommand({
            SourceRegion: target.sourceRegion,
            SourceSnapshotId: snapshot.snapshotId,
            Encrypted: true,
            KmsKeyId: target.kmsKeyArn,
            ...(duration !== undefined ? { CompletionDurationMinutes: duration } : {}),
            Description: `pgsnap DR copy of ${snapshot.snapshotId} (backup ${backupId} of ${cluster})`,
            TagSpecifications: [
              {
                ResourceType: 'snapshot',
                Tags: [
                  { Key: snapshotTags.cluster, Value: cluster },
                  { Key: snapshotTags.backupId, Value: backupId },
                  { Key: copyTags.sourceSnapshotId, Value: snapshot.snapshotId },
                  { Key: 'Name', Value: `pgsnap ${cluster} ${backupId} DR` },
                ],
              },
            ],
          }),
        )
      ).SnapshotId!;
    copies.push({
      account: target.account,
      region: target.region,
      sourceSnapshotId: snapshot.snapshotId,
      snapshotId,
      volumeId: snapshot.volumeId,
      state: already?.State ?? 'pending',
    });
  }
  return {
    account: target.account,
    region: target.region,
    copies,
    startedAt: now.toISOString(),
  };
}

/**
 * Copies what a restore from the DR account needs besides the snapshots and
 * the WAL: cluster.json and the artifacts (checked against their sha256 on
 * the way), then proposes the source manifest, which the DR stack's recorder
 * checks against the copies and records as the DR-side manifest
 * (record-dr-backup.ts): the source writes no manifest in DR. Returns the
 * proposed manifest.
 */
export async function copyBackupToDrRepository(
  source: Repository,
  dr: Repository,
  request: { backupId: string; copySet: DrCopySet },
): Promise<Manifest> {
  const manifest = await source.readManifest(request.backupId);
  if (manifest?.state !== 'completed') {
    throw new ManifestStateError(
      `backup ${request.backupId} is ${manifest ? manifest.state : 'not in the repository'} in ${source.url}; ` +
        'only a completed backup is copied to DR',
    );
  }
  const pin = await source.requirePin();
  const drPin = await dr.readPin();
  if (drPin) checkClusterPin(drPin, pin, dr.url);
  else
    await dr.store.putIfAbsent(
      `${dr.cluster}/cluster.json`,
      Buffer.from(`${JSON.stringify(pin, null, 2)}\n`),
    );
  for (const artifact of manifest.artifacts) {
    await dr.putArtifact(
      request.backupId,
      artifact.name,
      await source.readArtifact(request.backupId, artifact),
    );
  }
  // Proposed, not recorded: the DR stack's recorder writes the DR manifest from DR facts (record-dr-backup.ts).
  await proposeDrManifest(dr, manifest);
  await source.writeManifest({
    ...manifest,
    copies: request.copySet.copies,
    updatedAt: new Date().toISOString(),
  });
  return manifest;
}

/** The source manifest as the source's copier proposes it, beside the artifacts in the DR repository. */
export const proposedManifestName = 'source-manifest.json';

/**
 * The source's side: puts its completed manifest into the DR repository as
 * a proposal, once (a retried copy finds it there and leaves it).
 */
export async function proposeDrManifest(dr: Repository, manifest: Manifest): Promise<void> {
  await dr.store.putIfAbsent(
    dr.backupKey(manifest.backupId, proposedManifestName),
    Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`),
  );
}

/** The DR-side manifest: the source manifest with the DR copies as its snapshots. */
export function drManifestOf(
  manifest: Manifest,
  copies: ManifestCopy[],
  state: 'snapshotting' | 'completed' | 'failed',
): Manifest {
  return {
    ...manifest,
    state,
    snapshots: copies
      .filter((c) => c.snapshotId)
      .map((c) => {
        // The source volume's record, for a restore in the DR region: the copy is encrypted with the DR
        // key (which a volume made from it uses by default), and its zone is the restore's instance's.
        const source = manifest.snapshots.find((s) => s.snapshotId === c.sourceSnapshotId)?.volume;
        const { kmsKeyId: _sourceKey, ...volume } = source ?? { kmsKeyId: undefined };
        return {
          provider: 'ebs',
          snapshotId: c.snapshotId!,
          ...(c.volumeId ? { volumeId: c.volumeId } : {}),
          state: c.state,
          ...(source
            ? { volume: { ...(volume as typeof source), encrypted: true, availabilityZone: c.region } }
            : {}),
        };
      }),
    copies,
    updatedAt: new Date().toISOString(),
  };
}

export interface CopyProgress extends PollMemory {
  completed: boolean;
  attempt: number;
  /** The predicted remaining time of the slowest copy, bounded (poll-wait.ts). */
  waitSeconds: number;
  progress: string;
  copies: ManifestCopy[];
}

/** One poll of the copies in the DR region: completed, still pending, or failed (CopyFailedError, TimeoutError). */
export async function checkDrCopies(
  drEc2: EC2Client,
  request: {
    copySet: DrCopySet;
    attempt: number;
    settings: PollSettings;
    now?: Date;
    /** What the previous poll saw: the copies' current rate. */
    last?: PollMemory;
  },
): Promise<CopyProgress> {
  const ids = request.copySet.copies.map((c) => c.snapshotId).filter((id): id is string => id !== undefined);
  const found = await snapshotsById(drEc2, ids);
  const missing = ids.filter((id) => !found.some((s) => s.SnapshotId === id));
  const now = request.now ?? new Date();
  // A copy just started may not be visible yet (eventual consistency): pending until the grace is over.
  if (missing.length > 0 && now.getTime() - Date.parse(request.copySet.startedAt) > visibilityGraceMs) {
    throw new CopyFailedError(
      `DR copy ${missing.join(', ')} no longer exists in ${request.copySet.region} of account ${request.copySet.account}`,
    );
  }
  const failed = found.find((s) => s.State === 'error');
  if (failed) {
    throw new CopyFailedError(
      `DR copy ${failed.SnapshotId} (of ${sourceIdOf(failed) ?? 'a source snapshot'}) in ${request.copySet.region} ` +
        `is in state error${failed.StateMessage ? ` (${failed.StateMessage})` : ''}`,
    );
  }
  const attempt = request.attempt + 1;
  const completed = missing.length === 0 && found.every((s) => s.State === 'completed');
  const lowest = Math.min(
    ...found.map((s) => Number.parseInt(s.Progress ?? '0', 10) || 0),
    ...missing.map(() => 0),
  );
  const elapsedMs = now.getTime() - Date.parse(request.copySet.startedAt);
  if (!completed && elapsedMs > request.settings.snapshotHours * 3_600_000) {
    throw new TimeoutError(
      `DR copies ${ids.join(', ')} are not completed ${request.settings.snapshotHours}h after they were started ` +
        `(lowest progress ${lowest}%); the copy is given up, the backup stays completed`,
    );
  }
  // A time-based copy reports Progress too; EBS paces it to its completion duration.
  const readings: SnapshotReading[] = ids.map((id) => {
    const s = found.find((f) => f.SnapshotId === id);
    return { snapshotId: id, state: s?.State, progress: s?.Progress, startTime: s?.StartTime };
  });
  return {
    completed,
    attempt,
    waitSeconds: nextPollSeconds(readings, request.settings, {
      now,
      since: new Date(request.copySet.startedAt),
      last: request.last,
    }),
    progress: `${lowest}%`,
    ...memoryOf(readings, now),
    copies: request.copySet.copies.map((c) => ({
      ...c,
      state: found.find((s) => s.SnapshotId === c.snapshotId)?.State ?? c.state,
    })),
  };
}
