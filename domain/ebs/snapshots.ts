/**
 * The EBS snapshot set of one backup: created in one CreateSnapshots call (one
 * point in time across volumes), followed until every snapshot is completed,
 * and deleted by its tags when the backup fails, so nothing is orphaned even
 * if the step that created it never returned.
 */
import {
  CreateSnapshotsCommand,
  type CreateSnapshotsCommandOutput,
  DeleteSnapshotCommand,
  DescribeInstancesCommand,
  DescribeLockedSnapshotsCommand,
  type DescribeLockedSnapshotsCommandOutput,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  type EC2Client,
  type Snapshot,
  type Volume,
} from '@aws-sdk/client-ec2';
import {
  ManifestStateError,
  PreconditionError,
  SnapshotFailedError,
  SnapshotSetUnknownError,
  TimeoutError,
} from '../errors.ts';
import type { Manifest, VolumeRecord } from '../repository/manifest.ts';
import type { Repository } from '../repository/repository.ts';
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
  /**
   * The backup's repository: when given, the call is recorded in the manifest
   * before it is made and the snapshot ids right after, so that a repeated
   * call never takes a second set (see createSnapshotSet).
   */
  repository?: Repository;
  /** What `pgsnap begin --volumes` found of each volume: kept in the manifest for a restore. */
  hostVolumes?: HostVolume[];
}

/** One volume as the host's discovery reports it (`begin --volumes`). */
export const hostVolumeSchema = z.object({
  volumeId: z.string(),
  mountPoint: z.optional(z.string()),
  fstype: z.optional(z.string()),
  fsUuid: z.optional(z.string()),
  partition: z.optional(z.int()),
  paths: z.optional(
    z.array(
      z.object({
        role: z.enum(['data', 'tablespace', 'wal']),
        path: z.string(),
        tablespaceOid: z.optional(z.string()),
      }),
    ),
  ),
});
export type HostVolume = z.infer<typeof hostVolumeSchema>;

/**
 * The record a restore makes the volume again from: EC2's description of
 * the source volume and the host's of its file system; none when the host
 * did not report where the volume is mounted (an older agent).
 */
export function volumeRecordOf(
  volume: Volume,
  instanceId: string,
  host: HostVolume | undefined,
): VolumeRecord | undefined {
  if (!host?.mountPoint || !host.fstype || !host.paths?.length) return undefined;
  return {
    holds: host.paths.map((p) => ({
      role: p.role,
      path: p.path,
      ...(p.tablespaceOid ? { tablespaceOid: p.tablespaceOid } : {}),
    })),
    mountPoint: host.mountPoint,
    fstype: host.fstype,
    ...(host.fsUuid ? { fsUuid: host.fsUuid } : {}),
    ...(host.partition ? { partition: host.partition } : {}),
    ...(volume.Attachments?.find((a) => a.InstanceId === instanceId)?.Device
      ? { deviceName: volume.Attachments.find((a) => a.InstanceId === instanceId)!.Device! }
      : {}),
    sizeGiB: volume.Size ?? 1,
    volumeType: volume.VolumeType ?? 'gp3',
    ...(volume.Iops ? { iops: volume.Iops } : {}),
    ...(volume.Throughput ? { throughput: volume.Throughput } : {}),
    encrypted: volume.Encrypted ?? false,
    ...(volume.KmsKeyId ? { kmsKeyId: volume.KmsKeyId } : {}),
    availabilityZone: volume.AvailabilityZone ?? '',
  };
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
 * The snapshots of `ids` that exist. DescribeSnapshots with SnapshotIds fails
 * the whole call with InvalidSnapshot.NotFound when one of them does not exist
 * ("The specified snapshot does not exist": EC2 API reference, error codes);
 * then a `snapshot-id` filter, which returns only the ones that exist and
 * fails on none, tells which are missing.
 */
export async function snapshotsById(ec2: EC2Client, ids: string[]): Promise<Snapshot[]> {
  try {
    return (await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: ids }))).Snapshots ?? [];
  } catch (error) {
    if ((error as Error).name !== 'InvalidSnapshot.NotFound') throw error;
  }
  const found: Snapshot[] = [];
  let NextToken: string | undefined;
  do {
    const page = await ec2.send(
      new DescribeSnapshotsCommand({
        Filters: [{ Name: 'snapshot-id', Values: ids }],
        ...(NextToken ? { NextToken } : {}),
      }),
    );
    found.push(...(page.Snapshots ?? []));
    NextToken = page.NextToken;
  } while (NextToken);
  return found;
}

/**
 * How long a snapshot may be missing from DescribeSnapshots after it was
 * created before it counts as gone. The EC2 API is eventually consistent: a
 * resource just created can be reported as not existing for a while, and AWS
 * advises retrying with backoff "up to a few minutes"
 * (https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html).
 */
export const visibilityGraceMs = 5 * 60_000;

/**
 * Snapshots exactly the requested volumes of the instance in one
 * CreateSnapshots call. CreateSnapshots takes an instance and exclusions, not a
 * list of volumes: every other attached volume is excluded, and the boot volume
 * too unless it holds the cluster (it cannot be named in ExcludeDataVolumeIds).
 *
 * A repeated call for the same backupId returns the set already taken.
 * CreateSnapshots takes no ClientToken (it is not among the actions the EC2
 * idempotency guide lists, https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html),
 * and the tags it puts on the set are found by DescribeSnapshots only
 * eventually (https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html):
 * a retry seconds later can find no set and take a second one. So, given the
 * repository, the call is recorded in the manifest first (state
 * `snapshotting` with no snapshots: "CreateSnapshots may have run") and the
 * ids right after it returns; S3 reads are strongly consistent after a write
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/Welcome.html#ConsistencyModel).
 * A repeated call then returns the recorded ids, or, when the earlier call
 * ended without recording them, searches the tags and, finding nothing,
 * fails with SnapshotSetUnknownError rather than take a second set: the
 * failure path deletes whatever the earlier call made, by its tags.
 */
export async function createSnapshotSet(ec2: EC2Client, request: SnapshotSetRequest): Promise<SnapshotSet> {
  const { repository } = request;
  const manifest = repository ? await manifestBeforeSnapshots(repository, request.backupId) : undefined;
  if (manifest?.state === 'snapshotting') {
    const recorded = manifest.snapshots.filter((s) => s.provider === 'ebs' && s.volumeId);
    if (recorded.length > 0) {
      return {
        snapshots: recorded.map((s) => ({
          snapshotId: s.snapshotId,
          volumeId: s.volumeId!,
          state: s.state ?? 'pending',
        })),
        createdAt: manifest.updatedAt,
      };
    }
  }
  const existing = await snapshotsOfBackup(ec2, request.backupId);
  if (existing.length > 0) {
    const found = {
      snapshots: existing.map(describe),
      createdAt: (existing[0]!.StartTime ?? new Date()).toISOString(),
    };
    if (repository && manifest) await recordSnapshotIds(repository, manifest, found);
    return found;
  }
  if (manifest?.state === 'snapshotting') {
    throw new SnapshotSetUnknownError(
      `an earlier CreateSnapshots for backup ${request.backupId} of ${request.cluster} ended without recording ` +
        `its snapshots (manifest in ${repository!.url} updated ${manifest.updatedAt}), and none tagged with ` +
        'the backup are visible yet; the backup is given up instead of taking a second set, and the failure ' +
        'path deletes what the earlier call made. The next backup starts afresh',
    );
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
  const records = new Map(
    (volumes.Volumes ?? []).map((volume) => [
      volume.VolumeId!,
      volumeRecordOf(
        volume,
        request.instanceId,
        request.hostVolumes?.find((h) => h.volumeId === volume.VolumeId),
      ),
    ]),
  );
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
  const intent =
    repository && manifest ? await writeSnapshotting(repository, { ...manifest, snapshots: [] }) : undefined;
  let created: CreateSnapshotsCommandOutput;
  try {
    created = await ec2.send(
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
  } catch (error) {
    // A request EC2 refused with a client error (4xx: RequestLimitExceeded,
    // SnapshotCreationPerVolumeRateExceeded, a bad parameter) took no snapshot, so the intent is
    // taken back and a retry may call again. A server error (InternalError, 5xx) or no answer at
    // all leaves it unknown whether the set was taken: the intent stays.
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (repository && intent && status !== undefined && status >= 400 && status < 500) {
      await repository.writeManifest({
        ...intent,
        state: manifest!.state,
        updatedAt: new Date().toISOString(),
      });
    }
    throw error;
  }
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
  if (repository && intent) await recordSnapshotIds(repository, intent, { snapshots, createdAt }, records);
  return { snapshots, createdAt };
}

/** The manifest begin wrote, which must still be `started` (or `snapshotting` from an earlier call). */
async function manifestBeforeSnapshots(repository: Repository, backupId: string): Promise<Manifest> {
  const manifest = await repository.readManifest(backupId);
  if (!manifest) {
    throw new ManifestStateError(
      `snapshotting the volumes: backup ${backupId} has no manifest in ${repository.url}; pgsnap begin on ` +
        'the host writes it when it uses the same repository (--repo or PGSNAP_REPO): check the agent installation',
    );
  }
  if (manifest.state !== 'started' && manifest.state !== 'snapshotting') {
    throw new ManifestStateError(
      `snapshotting the volumes: the manifest of backup ${backupId} is ${manifest.state}, not started; ` +
        'no snapshots are taken for it',
    );
  }
  return manifest;
}

async function writeSnapshotting(repository: Repository, manifest: Manifest): Promise<Manifest> {
  const written: Manifest = { ...manifest, state: 'snapshotting', updatedAt: new Date().toISOString() };
  await repository.writeManifest(written);
  return written;
}

async function recordSnapshotIds(
  repository: Repository,
  manifest: Manifest,
  set: SnapshotSet,
  volumes = new Map<string, VolumeRecord | undefined>(),
): Promise<void> {
  await repository.writeManifest({
    ...manifest,
    state: 'snapshotting',
    snapshots: set.snapshots.map((s) => {
      const volume = volumes.get(s.volumeId);
      return {
        provider: 'ebs',
        snapshotId: s.snapshotId,
        volumeId: s.volumeId,
        state: s.state,
        ...(volume ? { volume } : {}),
      };
    }),
    updatedAt: set.createdAt,
  });
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
