/**
 * EC2 and EBS as the fleet sees them, per Region of one account: instances
 * and their volumes, snapshots that stay pending for as long as their changed
 * data takes to upload, DR copies that take as long as their data takes to
 * cross Regions, and the limits AWS enforces on them (the API token buckets,
 * 100 pending snapshots per Region, 5 concurrent snapshots per volume, 15 s
 * between snapshots of one volume, 20 concurrent copies per destination
 * Region), answered with AWS's error codes.
 */
import type { VirtualClock } from './clock.ts';
import { awsError, type BucketName, buckets, ebsQuotas, ec2Bucket, TokenBucket } from './quotas.ts';
import type { Draw } from './random.ts';

type Input = Record<string, unknown>;
type Filter = { Name: string; Values: string[] };
type Tag = { Key: string; Value: string };

export interface FleetVolume {
  volumeId: string;
  instanceId: string;
  device: string;
  sizeGiB: number;
  /** Changed data per backup, GiB: what an incremental snapshot and its copy carry. */
  changedGiB: number;
}

interface ModelSnapshot {
  snapshotId: string;
  volumeId: string;
  state: 'pending' | 'completed';
  startTime: number;
  /** When EBS starts moving data: Progress reads 0 % until then. */
  movingAt: number;
  /** When its own data is done: Progress reads 99 % from then until completeAt (the set's last). */
  doneAt: number;
  completeAt: number;
  /** How Progress bends over time (1: linear; below 1 fast then slow, above slow then fast). */
  shape: number;
  tags: Tag[];
  description: string;
  sourceSnapshotId?: string;
  changedGiB: number;
  copy: boolean;
}

/** How long an EBS snapshot and a cross-Region copy take: fixed overhead plus the changed data at a rate. */
export interface TransferModel {
  snapshotFixedSeconds: number;
  snapshotMiBPerSecond: number;
  copyFixedSeconds: number;
  copyMiBPerSecond: number;
}

/** A level over time: its current value and its peak. */
export class Gauge {
  value = 0;
  peak = 0;
  add(delta: number): void {
    this.value += delta;
    this.peak = Math.max(this.peak, this.value);
  }
}

export class RegionModel {
  readonly snapshots = new Map<string, ModelSnapshot>();
  readonly pending = new Gauge();
  readonly copies = new Gauge();
  private readonly buckets = new Map<BucketName, TokenBucket>();
  readonly lastCreateOnVolume = new Map<string, number>();

  constructor(
    readonly region: string,
    private readonly clock: VirtualClock,
  ) {}

  bucket(name: BucketName): TokenBucket {
    let bucket = this.buckets.get(name);
    if (!bucket) {
      bucket = new TokenBucket(buckets[name].size, buckets[name].refill, this.clock.now);
      this.buckets.set(name, bucket);
    }
    return bucket;
  }
}

let counter = 0;
const nextId = (prefix: string) => `${prefix}-${(++counter).toString(16).padStart(17, '0')}`;

export class Ec2Model {
  readonly regions = new Map<string, RegionModel>();
  readonly volumes = new Map<string, FleetVolume>();
  readonly instances = new Map<string, { tags: Tag[]; volumes: FleetVolume[] }>();
  /** Every refusal, by error code. */
  readonly refusals = new Map<string, number>();

  constructor(
    private readonly clock: VirtualClock,
    private readonly transfer: TransferModel,
    private readonly draw: Draw,
  ) {}

  region(name: string): RegionModel {
    let region = this.regions.get(name);
    if (!region) {
      region = new RegionModel(name, this.clock);
      this.regions.set(name, region);
    }
    return region;
  }

  addInstance(instanceId: string, tags: Tag[], volumes: FleetVolume[]): void {
    this.instances.set(instanceId, { tags, volumes });
    for (const volume of volumes) this.volumes.set(volume.volumeId, volume);
  }

  private refuse(code: string, message: string): never {
    this.refusals.set(code, (this.refusals.get(code) ?? 0) + 1);
    throw awsError(code, message);
  }

  /** One EC2 call in `regionName`: throttled by its bucket, then answered. */
  answer(regionName: string, action: string, input: Input): Input {
    const region = this.region(regionName);
    const filtered = Boolean(input.Filters || input.SnapshotIds || input.VolumeIds || input.InstanceIds);
    if (!region.bucket(ec2Bucket(action, filtered)).take(this.clock.now)) {
      this.refuse('RequestLimitExceeded', 'Request limit exceeded.');
    }
    switch (action) {
      case 'DescribeInstances':
        return this.describeInstances(input);
      case 'DescribeVolumes':
        return this.describeVolumes(input);
      case 'CreateSnapshots':
        return this.createSnapshots(region, input);
      case 'DescribeSnapshots':
        return this.describeSnapshots(region, input);
      case 'CopySnapshot':
        return this.copySnapshot(region, input);
      case 'DeleteSnapshot':
        return this.deleteSnapshot(region, input);
      case 'DescribeLockedSnapshots':
        return { Snapshots: [] };
      case 'LockSnapshot':
      case 'ModifySnapshotAttribute':
      case 'CreateTags':
        return {};
      default:
        throw new Error(`the fleet's EC2 model does not answer ${action}`);
    }
  }

  private describeInstances(input: Input): Input {
    const filters = (input.Filters ?? []) as Filter[];
    const ids = (input.InstanceIds as string[] | undefined) ?? [...this.instances.keys()];
    const instances = ids.flatMap((id) => {
      const instance = this.instances.get(id);
      if (!instance) return [];
      const match = filters.every((f) => {
        if (f.Name === 'instance-state-name') return f.Values.includes('running');
        if (!f.Name.startsWith('tag:')) return true;
        const key = f.Name.slice(4);
        return instance.tags.some((t) => t.Key === key && f.Values.includes(t.Value));
      });
      return match ? [{ InstanceId: id, RootDeviceName: '/dev/xvda', State: { Name: 'running' } }] : [];
    });
    return { Reservations: instances.length > 0 ? [{ Instances: instances }] : [] };
  }

  private describeVolumes(input: Input): Input {
    const filters = (input.Filters ?? []) as Filter[];
    const attached = filters.find((f) => f.Name === 'attachment.instance-id')?.Values ?? [];
    const volumes = attached.flatMap((id) => this.instances.get(id)?.volumes ?? []);
    return {
      Volumes: volumes.map((v) => ({
        VolumeId: v.volumeId,
        Size: v.sizeGiB,
        VolumeType: 'gp3',
        Encrypted: true,
        Attachments: [{ InstanceId: v.instanceId, Device: v.device, State: 'attached' }],
      })),
    };
  }

  private createSnapshots(region: RegionModel, input: Input): Input {
    const spec = input.InstanceSpecification as { InstanceId: string; ExcludeDataVolumeIds?: string[] };
    const instance = this.instances.get(spec.InstanceId);
    if (!instance)
      this.refuse('InvalidInstanceID.NotFound', `The instance ID '${spec.InstanceId}' does not exist`);
    const excluded = new Set(spec.ExcludeDataVolumeIds ?? []);
    const volumes = instance.volumes.filter((v) => !excluded.has(v.volumeId));
    if (region.pending.value + volumes.length > ebsQuotas.pendingSnapshotsPerRegion) {
      this.refuse(
        'PendingSnapshotLimitExceeded',
        'The maximum number of pending snapshots in this Region has been reached.',
      );
    }
    for (const volume of volumes) {
      const onVolume = [...region.snapshots.values()].filter(
        (s) => s.volumeId === volume.volumeId && s.state === 'pending' && !s.copy,
      ).length;
      if (onVolume >= ebsQuotas.concurrentSnapshotsPerVolume) {
        this.refuse(
          'ConcurrentSnapshotLimitExceeded',
          `Too many concurrent snapshots of ${volume.volumeId}.`,
        );
      }
      const last = region.lastCreateOnVolume.get(volume.volumeId);
      if (last !== undefined && this.clock.now - last < 15_000) {
        this.refuse(
          'SnapshotCreationPerVolumeRateExceeded',
          `Snapshots of ${volume.volumeId} are too frequent.`,
        );
      }
    }
    const tags = ((input.TagSpecifications as Array<{ Tags: Tag[] }> | undefined) ?? []).flatMap(
      (s) => s.Tags,
    );
    const factors = volumes.map(() => this.draw.lognormal(1, 0.25, 0.5, 3));
    const secondsOf = (volume: FleetVolume, i: number) => ({
      fixed: this.transfer.snapshotFixedSeconds * factors[i]!,
      data: ((volume.changedGiB * 1024) / this.transfer.snapshotMiBPerSecond) * factors[i]!,
    });
    // "progress independently ... However, they complete together" (AWS knowledge center, local/aws-facts.ts).
    const setSeconds = Math.max(...volumes.map((v, i) => secondsOf(v, i).fixed + secondsOf(v, i).data));
    const created = volumes.map((volume, i) => {
      region.lastCreateOnVolume.set(volume.volumeId, this.clock.now);
      return this.startSnapshot(region, {
        volumeId: volume.volumeId,
        tags,
        description: String(input.Description ?? ''),
        changedGiB: volume.changedGiB,
        copy: false,
        ...secondsOf(volume, i),
        setSeconds,
      });
    });
    return { Snapshots: created.map((s) => this.view(s)) };
  }

  /** `fixed` seconds at 0 %, then `data` seconds of progress, completed with its set after `setSeconds`. */
  private startSnapshot(
    region: RegionModel,
    s: Omit<
      ModelSnapshot,
      'snapshotId' | 'state' | 'startTime' | 'movingAt' | 'doneAt' | 'completeAt' | 'shape'
    > & { fixed: number; data: number; setSeconds?: number },
  ): ModelSnapshot {
    const { fixed, data, setSeconds, ...rest } = s;
    const seconds = Math.max(fixed + data, setSeconds ?? 0);
    const snapshot: ModelSnapshot = {
      ...rest,
      snapshotId: nextId('snap'),
      state: 'pending',
      startTime: this.clock.now,
      movingAt: this.clock.now + fixed * 1000,
      doneAt: this.clock.now + (fixed + data) * 1000,
      completeAt: this.clock.now + seconds * 1000,
      shape: this.draw.lognormal(1, 0.35, 0.5, 2),
    };
    region.snapshots.set(snapshot.snapshotId, snapshot);
    region.pending.add(1);
    if (snapshot.copy) region.copies.add(1);
    this.clock.after(seconds * 1000, () => {
      if (snapshot.state !== 'pending' || !region.snapshots.has(snapshot.snapshotId)) return;
      snapshot.state = 'completed';
      region.pending.add(-1);
      if (snapshot.copy) region.copies.add(-1);
    });
    return snapshot;
  }

  /**
   * Progress as EBS reports it, not linear in time: 0 % while EBS prepares
   * the snapshot, then a curve of its own shape over its data, then 99 %
   * until the last of its set completes; 100 % once completed.
   */
  private view(s: ModelSnapshot): Input {
    const moved = Math.min(
      1,
      Math.max(0, (this.clock.now - s.movingAt) / Math.max(1, s.doneAt - s.movingAt)),
    );
    const progress = s.state === 'completed' ? 100 : Math.min(99, Math.floor(100 * moved ** s.shape));
    return {
      SnapshotId: s.snapshotId,
      VolumeId: s.volumeId,
      State: s.state,
      Progress: `${progress}%`,
      StartTime: new Date(s.startTime),
      Description: s.description,
      Tags: s.tags,
      OwnerId: '111122223333',
    };
  }

  private describeSnapshots(region: RegionModel, input: Input): Input {
    const ids = input.SnapshotIds as string[] | undefined;
    if (ids) {
      const missing = ids.find((id) => !region.snapshots.has(id));
      if (missing) this.refuse('InvalidSnapshot.NotFound', `The snapshot '${missing}' does not exist.`);
      return { Snapshots: ids.map((id) => this.view(region.snapshots.get(id)!)) };
    }
    const filters = (input.Filters ?? []) as Filter[];
    const found = [...region.snapshots.values()].filter((s) =>
      filters.every((f) => {
        if (f.Name === 'snapshot-id') return f.Values.includes(s.snapshotId);
        if (f.Name === 'volume-id') return f.Values.includes(s.volumeId);
        if (f.Name === 'status') return f.Values.includes(s.state);
        if (f.Name.startsWith('tag:')) {
          const key = f.Name.slice(4);
          return s.tags.some((t) => t.Key === key && f.Values.includes(t.Value));
        }
        return true;
      }),
    );
    return { Snapshots: found.map((s) => this.view(s)) };
  }

  private copySnapshot(destination: RegionModel, input: Input): Input {
    const source = this.region(String(input.SourceRegion));
    const original = source.snapshots.get(String(input.SourceSnapshotId));
    if (!original)
      this.refuse('InvalidSnapshot.NotFound', `The snapshot '${input.SourceSnapshotId}' does not exist.`);
    if (original.state !== 'completed') {
      this.refuse('IncorrectState', `Snapshot '${original.snapshotId}' is not completed.`);
    }
    if (destination.copies.value >= ebsQuotas.concurrentCopiesPerDestinationRegion) {
      this.refuse(
        'ResourceLimitExceeded',
        `You have exceeded the number of concurrent snapshot copies in ${destination.region}.`,
      );
    }
    if (destination.pending.value >= ebsQuotas.pendingSnapshotsPerRegion) {
      this.refuse(
        'PendingSnapshotLimitExceeded',
        'The maximum number of pending snapshots has been reached.',
      );
    }
    const tags = ((input.TagSpecifications as Array<{ Tags: Tag[] }> | undefined) ?? []).flatMap(
      (s) => s.Tags,
    );
    const factor = this.draw.lognormal(1, 0.25, 0.5, 3);
    const copy = this.startSnapshot(destination, {
      volumeId: original.volumeId,
      tags,
      description: String(input.Description ?? ''),
      sourceSnapshotId: original.snapshotId,
      changedGiB: original.changedGiB,
      copy: true,
      fixed: this.transfer.copyFixedSeconds * factor,
      data: ((original.changedGiB * 1024) / this.transfer.copyMiBPerSecond) * factor,
    });
    return { SnapshotId: copy.snapshotId };
  }

  private deleteSnapshot(region: RegionModel, input: Input): Input {
    const snapshot = region.snapshots.get(String(input.SnapshotId));
    if (!snapshot)
      this.refuse('InvalidSnapshot.NotFound', `The snapshot '${input.SnapshotId}' does not exist.`);
    if (snapshot.state === 'pending') {
      region.pending.add(-1);
      if (snapshot.copy) region.copies.add(-1);
    }
    region.snapshots.delete(snapshot.snapshotId);
    return {};
  }
}
