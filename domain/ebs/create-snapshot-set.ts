/**
 * The EBS snapshot set of one backup, created in one CreateSnapshots call
 * (one point in time across volumes), recorded in the manifest before and
 * after the call so that a repeated step never takes a second set.
 */

import {
  CreateSnapshotsCommand,
  type CreateSnapshotsCommandOutput,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  type EC2Client,
  type Snapshot,
  type Volume,
} from '@aws-sdk/client-ec2';
import { isThrottledOrAtCapacity } from '../aws-retry.ts';
import {
  ManifestStateError,
  PreconditionError,
  SnapshotFailedError,
  SnapshotSetUnknownError,
} from '../errors.ts';
import type { Manifest, VolumeRecord } from '../repository/manifest.ts';
import type { Repository } from '../repository/repository.ts';
import {
  type HostVolume,
  type SnapshotOfSet,
  type SnapshotSet,
  type SnapshotSetRequest,
  snapshotsOfBackup,
  snapshotTags,
} from './snapshots.ts';

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
    // A request EC2 refused with a client error (4xx: a bad parameter), or by name for throttling
    // or capacity (RequestLimitExceeded comes with HTTP 503; SnapshotCreationPerVolumeRateExceeded,
    // PendingSnapshotLimitExceeded…), took no snapshot, so the intent is taken back and the state
    // machine's retry may call again. Another server error (InternalError) or no answer at all
    // leaves it unknown whether the set was taken: the intent stays.
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const refused = (status !== undefined && status >= 400 && status < 500) || isThrottledOrAtCapacity(error);
    if (repository && intent && refused) {
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
