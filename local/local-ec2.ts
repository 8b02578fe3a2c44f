/**
 * The part of the EC2 API the backup's Lambdas call, answered on one machine
 * by a local snapshot provider (btrfs or copy): the host is one "instance",
 * each of the cluster's directories one "volume", and CreateSnapshots takes the
 * provider's snapshots of the requested volumes. `pgsnap demo` gives it to the
 * very handlers that run in Lambda, so the state machine's snapshot steps run
 * unchanged. A local snapshot is complete when taken.
 */
import {
  CreateSnapshotsCommand,
  DeleteSnapshotCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  type EC2Client,
  type Tag,
} from '@aws-sdk/client-ec2';
import { snapshotTags } from '#domain/ebs/snapshots';
import type { SnapshotProvider, VolumeSnapshot } from '../agent/providers/provider.ts';
import type { ClusterPath } from '../agent/volumes/cluster-paths.ts';

export interface LocalVolume {
  volumeId: string;
  device: string;
  /** What the volume holds; none for the root volume. */
  holds?: ClusterPath;
}

interface LocalSnapshot {
  snapshotId: string;
  volumeId: string;
  tags: Tag[];
  startTime: Date;
  taken: VolumeSnapshot;
}

export class LocalEc2 {
  private readonly snapshots = new Map<string, LocalSnapshot>();
  private next = 1;

  constructor(
    private readonly provider: SnapshotProvider,
    readonly instanceId: string,
    private readonly volumes: LocalVolume[],
    private readonly rootDevice = '/dev/xvda',
  ) {}

  /** The same object typed as the SDK client the domain code takes; it answers only the commands below. */
  get client(): EC2Client {
    return this as unknown as EC2Client;
  }

  /** The provider's snapshots of a backup, for the manifest and the drill. */
  takenFor(backupId: string): VolumeSnapshot[] {
    return this.ofBackup(backupId).map((s) => s.taken);
  }

  async send(command: unknown): Promise<unknown> {
    if (command instanceof DescribeInstancesCommand) {
      return {
        Reservations: [{ Instances: [{ InstanceId: this.instanceId, RootDeviceName: this.rootDevice }] }],
      };
    }
    if (command instanceof DescribeVolumesCommand) {
      return {
        Volumes: this.volumes.map((v) => ({
          VolumeId: v.volumeId,
          Attachments: [{ InstanceId: this.instanceId, Device: v.device }],
        })),
      };
    }
    if (command instanceof CreateSnapshotsCommand) return this.create(command);
    if (command instanceof DescribeSnapshotsCommand) return this.describe(command);
    if (command instanceof DeleteSnapshotCommand) {
      const snapshot = this.snapshots.get(command.input.SnapshotId ?? '');
      if (snapshot) {
        await this.provider.delete([snapshot.taken]);
        this.snapshots.delete(snapshot.snapshotId);
      }
      return {};
    }
    throw new Error(`the local EC2 does not answer ${(command as object).constructor.name}`);
  }

  private async create(command: CreateSnapshotsCommand) {
    const { InstanceSpecification: spec, TagSpecifications } = command.input;
    if (spec?.InstanceId !== this.instanceId) {
      throw Object.assign(new Error(`instance ${spec?.InstanceId} is not this host (${this.instanceId})`), {
        name: 'InvalidInstanceID.NotFound',
      });
    }
    const excluded = new Set(spec.ExcludeDataVolumeIds ?? []);
    const chosen = this.volumes.filter(
      (v) => !excluded.has(v.volumeId) && !(spec.ExcludeBootVolume && v.device === this.rootDevice),
    );
    const unheld = chosen.filter((v) => !v.holds);
    if (unheld.length > 0) {
      throw new Error(`volume ${unheld.map((v) => v.volumeId).join(', ')} holds nothing of the cluster here`);
    }
    const backupId =
      TagSpecifications?.[0]?.Tags?.find((t) => t.Key === snapshotTags.backupId)?.Value ?? 'local';
    // One provider call for the set: on failure it removes what it already took.
    const taken = await this.provider.snapshot(
      backupId,
      chosen.map((v) => v.holds!),
    );
    const startTime = new Date();
    const made = chosen.map((volume, index): LocalSnapshot => {
      const snapshot = {
        snapshotId: `snap-${(this.next++).toString(16).padStart(17, '0')}`,
        volumeId: volume.volumeId,
        tags: TagSpecifications?.[0]?.Tags ?? [],
        startTime,
        taken: taken[index]!,
      };
      this.snapshots.set(snapshot.snapshotId, snapshot);
      return snapshot;
    });
    return { Snapshots: made.map((s) => this.describeOne(s)) };
  }

  private describe(command: DescribeSnapshotsCommand) {
    const { SnapshotIds, Filters } = command.input;
    let found = [...this.snapshots.values()];
    if (SnapshotIds) found = found.filter((s) => SnapshotIds.includes(s.snapshotId));
    for (const filter of Filters ?? []) {
      if (!filter.Name?.startsWith('tag:'))
        throw new Error(`the local EC2 does not filter by ${filter.Name}`);
      const key = filter.Name.slice('tag:'.length);
      found = found.filter((s) =>
        s.tags.some((t) => t.Key === key && filter.Values?.includes(t.Value ?? '')),
      );
    }
    return { Snapshots: found.map((s) => this.describeOne(s)) };
  }

  private describeOne(snapshot: LocalSnapshot) {
    return {
      SnapshotId: snapshot.snapshotId,
      VolumeId: snapshot.volumeId,
      State: 'completed',
      Progress: '100%',
      StartTime: snapshot.startTime,
      Tags: snapshot.tags,
    };
  }

  private ofBackup(backupId: string): LocalSnapshot[] {
    return [...this.snapshots.values()].filter((s) =>
      s.tags.some((t) => t.Key === snapshotTags.backupId && t.Value === backupId),
    );
  }
}
