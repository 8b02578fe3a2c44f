/**
 * The EBS side of a restore: a volume made from each snapshot of the backup
 * in the target instance's zone, as the source volume was (type, size,
 * performance, encryption), attached to the instance; and, on the way out,
 * every volume of the restore found by its tag, detached and deleted, also
 * when the step that created it never returned.
 *
 * Error codes are from the EC2 API reference (CreateVolume, AttachVolume,
 * DetachVolume, DeleteVolume; "Error codes for the Amazon EC2 API").
 */
import {
  AttachVolumeCommand,
  CreateVolumeCommand,
  DeleteVolumeCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  DetachVolumeCommand,
  type EC2Client,
  paginateDescribeVolumes,
  type Volume,
  type VolumeType,
} from '@aws-sdk/client-ec2';
import { ec2Errors, isAttachmentPointInUse, isEventual, type Patience, retrying } from '../ebs/ec2-api.ts';
import { snapshotsById, snapshotTags } from '../ebs/snapshots.ts';
import { SnapshotOfAnotherClusterError, VolumeFailedError } from '../errors.ts';
import type { RestoreRecord, RestoreVolume } from '../repository/restore-record.ts';

/**
 * Tags on every volume and instance a restore makes; the cleanup finds them
 * by `restoreId`. The volumes RunInstances makes with a launched instance
 * carry `restoreRoot` instead: they are the instance's, and go with it.
 */
export const restoreTags = {
  restoreId: 'pgsnap:restore-id',
  cluster: 'pgsnap:cluster',
  restoreRoot: 'pgsnap:restore-root',
} as const;

function tagsOf(record: Pick<RestoreRecord, 'restoreId' | 'cluster'>, name: string) {
  return [
    { Key: restoreTags.restoreId, Value: record.restoreId },
    { Key: restoreTags.cluster, Value: record.cluster },
    { Key: 'Name', Value: name },
  ];
}

/** Every volume tagged with the restore, across pages. */
export async function volumesOfRestore(ec2: EC2Client, restoreId: string): Promise<Volume[]> {
  const found: Volume[] = [];
  const pages = paginateDescribeVolumes(
    { client: ec2 },
    { Filters: [{ Name: `tag:${restoreTags.restoreId}`, Values: [restoreId] }] },
  );
  for await (const page of pages) found.push(...(page.Volumes ?? []));
  return found;
}

/**
 * Refuses, before any volume is made, a snapshot that EC2 does not show
 * tagged with the restored cluster: the snapshot ids come from a manifest,
 * which the role's IAM condition (aws:ResourceTag/pgsnap:cluster, any
 * configured cluster) does not tie to this restore's cluster.
 */
async function requireSnapshotsOf(ec2: EC2Client, cluster: string, snapshotIds: string[]): Promise<void> {
  if (snapshotIds.length === 0) return;
  const found = await snapshotsById(ec2, snapshotIds);
  for (const id of snapshotIds) {
    const tags = found.find((s) => s.SnapshotId === id)?.Tags ?? [];
    const tagged = tags.find((t) => t.Key === snapshotTags.cluster)?.Value;
    if (tagged !== cluster) {
      throw new SnapshotOfAnotherClusterError(
        `snapshot ${id} is ${tagged === undefined ? 'not tagged with a cluster' : `tagged with cluster ${tagged}`} ` +
          `in EC2 (${snapshotTags.cluster}), not with ${cluster}, the cluster being restored: no volume made`,
      );
    }
  }
}

/**
 * A volume per snapshot, in `availabilityZone`, once EC2 shows every
 * snapshot tagged with the record's cluster. CreateVolume takes a
 * ClientToken (EC2 idempotency guide), so a retried step makes no second
 * volume: the token is the restore and the snapshot.
 */
export async function createRestoreVolumes(
  ec2: EC2Client,
  record: RestoreRecord,
  options: { availabilityZone: string; kmsKeyId?: string; initializationRate?: number },
): Promise<RestoreVolume[]> {
  await requireSnapshotsOf(
    ec2,
    record.cluster,
    record.volumes.filter((v) => !v.volumeId).map((v) => v.snapshotId),
  );
  const made: RestoreVolume[] = [];
  for (const [index, volume] of record.volumes.entries()) {
    if (volume.volumeId) {
      made.push(volume);
      continue;
    }
    const { source } = volume;
    const provisioned = ['io1', 'io2', 'gp3'].includes(source.volumeType);
    const output = await ec2.send(
      new CreateVolumeCommand({
        SnapshotId: volume.snapshotId,
        AvailabilityZone: options.availabilityZone,
        VolumeType: source.volumeType as VolumeType,
        Size: source.sizeGiB,
        ...(provisioned && source.iops ? { Iops: source.iops } : {}),
        ...(source.volumeType === 'gp3' && source.throughput ? { Throughput: source.throughput } : {}),
        // A volume from an encrypted snapshot is encrypted with the snapshot's key unless another is named.
        ...(source.encrypted || options.kmsKeyId ? { Encrypted: true } : {}),
        ...(options.kmsKeyId ? { KmsKeyId: options.kmsKeyId } : {}),
        ...(options.initializationRate ? { VolumeInitializationRate: options.initializationRate } : {}),
        ClientToken: `${record.restoreId}-${index}`,
        TagSpecifications: [
          {
            ResourceType: 'volume',
            Tags: tagsOf(record, `pgsnap ${record.cluster} ${record.backupId} ${source.mountPoint}`),
          },
        ],
      }),
    );
    made.push({ ...volume, volumeId: output.VolumeId! });
  }
  return made;
}

export interface VolumeProgress {
  /** Every volume is in `wanted`. */
  ready: boolean;
  states: Record<string, string>;
}

/**
 * One poll: are all the restore's volumes `available` (after CreateVolume) or
 * attached (after AttachVolume)? A volume in `error`, or one missing past the
 * grace EC2's eventual consistency needs, fails the restore.
 */
export async function checkRestoreVolumes(
  ec2: EC2Client,
  volumes: RestoreVolume[],
  wanted: 'available' | 'attached',
  instanceId?: string,
): Promise<VolumeProgress> {
  const ids = volumes.map((v) => v.volumeId!).filter(Boolean);
  const found = await describeExisting(ec2, ids);
  const states: Record<string, string> = {};
  for (const id of ids) {
    const volume = found.find((v) => v.VolumeId === id);
    if (!volume) {
      states[id] = 'not visible yet';
      continue;
    }
    if (volume.State === 'error') {
      throw new VolumeFailedError(
        `volume ${id} of the restore is in error: EC2 could not make it from its snapshot`,
      );
    }
    const attachment = volume.Attachments?.find((a) => a.InstanceId === instanceId);
    states[id] =
      wanted === 'attached' ? (attachment?.State ?? volume.State ?? 'unknown') : (volume.State ?? 'unknown');
  }
  const ready = ids.length === volumes.length && ids.every((id) => states[id] === wanted);
  return { ready, states };
}

/** DescribeVolumes of ids that may not all exist yet: the `volume-id` filter returns those that do. */
async function describeExisting(ec2: EC2Client, ids: string[]): Promise<Volume[]> {
  if (ids.length === 0) return [];
  const page = await ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'volume-id', Values: ids }] }));
  return page.Volumes ?? [];
}

/** Device names EC2 recommends for EBS data volumes on Linux: /dev/sd[f-p] ("Device names on Linux instances"). */
const deviceNames = 'fghijklmnop'.split('').map((letter) => `/dev/sd${letter}`);

/**
 * Attaches each volume that is not yet attached to the instance, at a device
 * name the instance does not use, as a fresh DescribeInstances shows it. That
 * view may lag (an attach of a step that timed out and is retried): a name
 * EC2 then refuses ("Attachment point … is already in use") is skipped and
 * the next one tried. NotFound for the instance or a volume the restore just
 * made is waited out with backoff. The host finds the volume by its EBS id,
 * not by this name (on Nitro instances the kernel names NVMe disks itself).
 */
export async function attachRestoreVolumes(
  ec2: EC2Client,
  volumes: RestoreVolume[],
  instanceId: string,
  patience?: Patience,
): Promise<RestoreVolume[]> {
  const eventual = isEventual(ec2Errors.instanceNotFound, ec2Errors.volumeNotFound);
  const instance = await retrying(
    async () =>
      (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }))).Reservations?.[0]
        ?.Instances?.[0],
    eventual,
    patience,
  );
  const used = new Set((instance?.BlockDeviceMappings ?? []).map((m) => m.DeviceName));
  if (instance?.RootDeviceName) used.add(instance.RootDeviceName);
  const current = await describeExisting(
    ec2,
    volumes.map((v) => v.volumeId!),
  );
  const attached: RestoreVolume[] = [];
  for (const volume of volumes) {
    const now = current.find((v) => v.VolumeId === volume.volumeId);
    const attachment = now?.Attachments?.find((a) => a.InstanceId === instanceId);
    if (attachment) {
      attached.push({ ...volume, device: attachment.Device! });
      continue;
    }
    for (;;) {
      const device = deviceNames.find((name) => !used.has(name));
      if (!device)
        throw new VolumeFailedError(
          `instance ${instanceId} has no free device name for volume ${volume.volumeId} ` +
            `(${deviceNames[0]}–${deviceNames.at(-1)} are all in use)`,
        );
      used.add(device);
      try {
        await retrying(
          () =>
            ec2.send(
              new AttachVolumeCommand({ VolumeId: volume.volumeId!, InstanceId: instanceId, Device: device }),
            ),
          eventual,
          patience,
        );
        attached.push({ ...volume, device });
        break;
      } catch (error) {
        if (!isAttachmentPointInUse(error)) throw error;
      }
    }
  }
  return attached;
}

/**
 * One pass of the cleanup over the restore's volumes: those its record names
 * and those tagged with it (a CreateVolume whose step never returned), since
 * a tag-filtered Describe may not show a volume just made. Attached ones are
 * detached (forced on the failure path, where the host may not have
 * unmounted), available ones deleted. Repeated until none is left. A recorded
 * volume not visible counts as remaining until `graceOver`: right after
 * CreateVolume that means "not propagated yet", not "gone".
 */
export async function releaseRestoreVolumes(
  ec2: EC2Client,
  restoreId: string,
  options: { force: boolean; recorded?: string[]; alreadyDeleted?: string[]; graceOver?: boolean },
): Promise<{ remaining: number; deleted: string[]; states: Record<string, string> }> {
  const deleted: string[] = [];
  const states: Record<string, string> = {};
  const gone = new Set(options.alreadyDeleted ?? []);
  const recorded = (options.recorded ?? []).filter((id) => !gone.has(id));
  const volumes = new Map<string, Volume>();
  for (const volume of [
    ...(await describeExisting(ec2, recorded)),
    ...(await volumesOfRestore(ec2, restoreId)),
  ])
    volumes.set(volume.VolumeId!, volume);
  for (const id of recorded) {
    if (!volumes.has(id)) states[id] = options.graceOver ? 'deleted' : 'not visible yet';
  }
  for (const volume of volumes.values()) {
    const id = volume.VolumeId!;
    states[id] = volume.State ?? 'unknown';
    if (volume.Tags?.some((t) => t.Key === restoreTags.restoreRoot)) {
      // A launched instance's own volume (named by a stale record?): it goes with the instance.
      delete states[id];
      continue;
    }
    try {
      const attachment = volume.Attachments?.find((a) => a.State === 'attached' || a.State === 'attaching');
      if (volume.State === 'in-use' && attachment) {
        await ec2.send(
          new DetachVolumeCommand({
            VolumeId: id,
            // Named although optional: it detaches exactly that attachment (and moto requires it).
            ...(attachment.InstanceId ? { InstanceId: attachment.InstanceId } : {}),
            ...(attachment.Device ? { Device: attachment.Device } : {}),
            Force: options.force,
          }),
        );
        states[id] = 'detaching';
      } else if (volume.State === 'available' || volume.State === 'error') {
        await ec2.send(new DeleteVolumeCommand({ VolumeId: id }));
        deleted.push(id);
        states[id] = 'deleted';
      }
    } catch (error) {
      // Gone already, or moving between states since it was described: the next pass sees where it went.
      const name = (error as Error).name;
      if (name === ec2Errors.volumeNotFound) {
        states[id] = 'deleted';
        deleted.push(id);
      } else if (
        name !== 'IncorrectState' &&
        name !== 'VolumeInUse' &&
        name !== 'InvalidAttachment.NotFound'
      ) {
        throw error;
      }
    }
  }
  const remaining = Object.values(states).filter((state) => state !== 'deleted').length;
  return { remaining, deleted, states };
}
