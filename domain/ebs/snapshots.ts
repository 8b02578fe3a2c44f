/**
 * The EBS snapshot set of one backup: created in one CreateSnapshots call (one
 * point in time across volumes), followed until every snapshot is completed,
 * and deleted by its tags when the backup fails, so nothing is orphaned even
 * if the step that created it never returned.
 */
import {
  CreateSnapshotsCommand,
  DeleteSnapshotCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  type EC2Client,
  type Snapshot,
} from '@aws-sdk/client-ec2';
import { PreconditionError, SnapshotFailedError, TimeoutError } from '../errors.ts';
import * as z from '../zod.ts';

/** Tags on every snapshot pgsnap takes; cleanup and IAM conditions rely on them. */
export const snapshotTags = { cluster: 'pgsnap:cluster', backupId: 'pgsnap:backup-id' } as const;

/**
 * One snapshot of the set as the state machine carries it between steps; every handler that takes
 * the set parses it with this schema. A set is never empty: no backup has zero volumes.
 */
export const snapshotOfSetSchema = z.object({
  snapshotId: z.string(),
  volumeId: z.string(),
  state: z.string(),
});
export const snapshotListSchema = z.array(snapshotOfSetSchema).check(z.minLength(1));
export type SnapshotOfSet = z.infer<typeof snapshotOfSetSchema>;

export interface SnapshotSet {
  snapshots: SnapshotOfSet[];
  /** When CreateSnapshots returned: the point in time of every snapshot of the set. */
  createdAt: string;
}

export interface SnapshotSetRequest {
  cluster: string;
  backupId: string;
  instanceId: string;
  /** Exactly the volumes that hold PGDATA, tablespaces and pg_wal. */
  volumeIds: string[];
}

function describe(snapshot: Snapshot): SnapshotOfSet {
  return {
    snapshotId: snapshot.SnapshotId!,
    volumeId: snapshot.VolumeId!,
    state: snapshot.State ?? 'unknown',
  };
}

/** Every snapshot in this account and region tagged with the backupId, across pages. */
export async function snapshotsOfBackup(ec2: EC2Client, backupId: string): Promise<Snapshot[]> {
  const found: Snapshot[] = [];
  let NextToken: string | undefined;
  do {
    const page = await ec2.send(
      new DescribeSnapshotsCommand({
        OwnerIds: ['self'],
        Filters: [{ Name: `tag:${snapshotTags.backupId}`, Values: [backupId] }],
        ...(NextToken ? { NextToken } : {}),
      }),
    );
    found.push(...(page.Snapshots ?? []));
    NextToken = page.NextToken;
  } while (NextToken);
  return found;
}

/**
 * Snapshots exactly the requested volumes of the instance in one
 * CreateSnapshots call. CreateSnapshots takes an instance and exclusions, not a
 * list of volumes: every other attached volume is excluded, and the boot volume
 * too unless it holds the cluster (it cannot be named in ExcludeDataVolumeIds).
 * A repeated call for the same backupId returns the set already taken.
 */
export async function createSnapshotSet(ec2: EC2Client, request: SnapshotSetRequest): Promise<SnapshotSet> {
  const existing = await snapshotsOfBackup(ec2, request.backupId);
  if (existing.length > 0) {
    return {
      snapshots: existing.map(describe),
      createdAt: (existing[0]!.StartTime ?? new Date()).toISOString(),
    };
  }
  if (request.volumeIds.length === 0) {
    throw new PreconditionError(
      `no volumes are known for cluster ${request.cluster}: list them as volumeIds in the configuration, ` +
        'or install an agent whose begin reports them (pgsnap discover)',
    );
  }
  const [instances, volumes] = await Promise.all([
    ec2.send(new DescribeInstancesCommand({ InstanceIds: [request.instanceId] })),
    ec2.send(
      new DescribeVolumesCommand({
        Filters: [{ Name: 'attachment.instance-id', Values: [request.instanceId] }],
      }),
    ),
  ]);
  const rootDevice = instances.Reservations?.[0]?.Instances?.[0]?.RootDeviceName;
  const attached = (volumes.Volumes ?? []).map((volume) => ({
    volumeId: volume.VolumeId!,
    device: volume.Attachments?.find((a) => a.InstanceId === request.instanceId)?.Device,
  }));
  const missing = request.volumeIds.filter((id) => !attached.some((volume) => volume.volumeId === id));
  if (missing.length > 0) {
    throw new PreconditionError(
      `volume ${missing.join(', ')} of cluster ${request.cluster} is not attached to ${request.instanceId} ` +
        `(attached: ${attached.map((v) => v.volumeId).join(', ') || 'none'}); correct volumeIds in the configuration`,
    );
  }
  const boot = attached.find((volume) => volume.device !== undefined && volume.device === rootDevice);
  const created = await ec2.send(
    new CreateSnapshotsCommand({
      InstanceSpecification: {
        InstanceId: request.instanceId,
        ExcludeBootVolume: !(boot && request.volumeIds.includes(boot.volumeId)),
        ExcludeDataVolumeIds: attached
          .filter((volume) => volume !== boot && !request.volumeIds.includes(volume.volumeId))
          .map((volume) => volume.volumeId),
      },
      Description: `pgsnap backup ${request.backupId} of ${request.cluster}`,
      TagSpecifications: [
        {
          ResourceType: 'snapshot',
          Tags: [
            { Key: snapshotTags.cluster, Value: request.cluster },
            { Key: snapshotTags.backupId, Value: request.backupId },
            { Key: 'Name', Value: `pgsnap ${request.cluster} ${request.backupId}` },
          ],
        },
      ],
    }),
  );
  const createdAt = new Date().toISOString();
  const snapshots = (created.Snapshots ?? []).map(
    (s): SnapshotOfSet => ({ snapshotId: s.SnapshotId!, volumeId: s.VolumeId!, state: s.State ?? 'pending' }),
  );
  const notTaken = request.volumeIds.filter((id) => !snapshots.some((s) => s.volumeId === id));
  if (notTaken.length > 0) {
    throw new SnapshotFailedError(
      `CreateSnapshots of ${request.instanceId} returned no snapshot of ${notTaken.join(', ')}; the backup is not valid`,
    );
  }
  return { snapshots, createdAt };
}

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
  const found = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: ids }));
  const snapshots = found.Snapshots ?? [];
  const missing = ids.filter((id) => !snapshots.some((s) => s.SnapshotId === id));
  if (missing.length > 0) {
    throw new SnapshotFailedError(`snapshot ${missing.join(', ')} no longer exists; the backup is not valid`);
  }
  const failed = snapshots.find((s) => s.State === 'error');
  if (failed) {
    throw new SnapshotFailedError(
      `snapshot ${failed.SnapshotId} of volume ${failed.VolumeId} is in state error` +
        `${failed.StateMessage ? ` (${failed.StateMessage})` : ''}; the backup is not valid`,
    );
  }
  const attempt = request.attempt + 1;
  const completed = snapshots.every((s) => s.State === 'completed');
  const progress = snapshots.map((s) => Number.parseInt(s.Progress ?? '0', 10) || 0);
  const elapsedMs = (request.now ?? new Date()).getTime() - new Date(request.set.createdAt).getTime();
  if (!completed && elapsedMs > request.settings.snapshotHours * 3_600_000) {
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
