/**
 * The local EC2's state and its read-only answers (Describe*), under the commands that change it
 * (local-ec2.ts). Split so each file holds one part of the model.
 */
import { writeFileSync } from 'node:fs';
import {
  type DescribeInstancesCommand,
  type DescribeSnapshotsCommand,
  type DescribeVolumesCommand,
  EC2Client,
  type Filter,
  type Tag,
} from '@aws-sdk/client-ec2';
import { snapshotTags } from '#domain/ebs/snapshots';
import type { SnapshotProvider, VolumeSnapshot } from '../agent/providers/provider.ts';
import type { ClusterPath } from '../agent/volumes/cluster-paths.ts';
import { awsFacts } from './aws-facts.ts';

export interface LocalVolume {
  volumeId: string;
  device: string;
  /** What the volume holds; none for the root volume. */
  holds?: ClusterPath;
}

/** A volume CreateVolume made: a writable clone of a snapshot. */
export interface ClonedVolume {
  volumeId: string;
  snapshotId: string;
  path: string;
  tags: Tag[];
  state: 'creating' | 'available' | 'in-use';
  attachment?: { instanceId: string; device: string };
  /** The customer managed key it is encrypted with, if any. */
  kmsKeyId?: string;
  /** Looks (by id, by tag) that do not see it yet: EC2's eventual consistency. */
  unseen: Unseen;
  /** When CreateVolume made it, its size and the initialization rate asked for (DescribeVolumeStatus). */
  createdAt: number;
  sizeGiB: number;
  initializationRate?: number;
}

export interface Unseen {
  byId: number;
  byTag: number;
}

export interface LocalInstance {
  instanceId: string;
  tags: Tag[];
  state: 'pending' | 'running' | 'terminated';
  stateReason?: string;
  /** By RunInstances, not there from the start. */
  launched: boolean;
  /** The root volume RunInstances made with it, deleted with it. */
  root?: { volumeId: string; tags: Tag[]; kmsKeyId?: string };
  unseen: Unseen;
}

/** A launch template the local EC2 knows (others launch as a plain template would). */
export interface LocalLaunchTemplate {
  /** It defines network interfaces (then RunInstances refuses an instance-level SubnetId). */
  networkInterfaces?: boolean;
  /** Its root volume is encrypted with this customer managed key. */
  rootKmsKeyId?: string;
}

/**
 * AWS's documented behaviour the local EC2 enforces (local/aws-facts.ts):
 * how many looks a just-made resource stays invisible, and who may use which
 * key through EC2 (the caller's kms:CreateGrant, as the IAM evaluation decides).
 */
export interface LocalEc2Semantics {
  /** Looks by id (Describe, Attach, Terminate) that answer NotFound after a create. */
  notFoundLooks: number;
  /** Tag-filtered Describes that miss a resource after its create. */
  tagLagLooks: number;
  /** Whether `call` may use `keyId` for the caller; all by default. */
  mayUseKey: (keyId: string, call: keyof typeof awsFacts.ebsEncryption.byCall) => boolean;
}

/** Faults a test can ask for, as EC2 would show them. */
export interface LocalEc2Faults {
  /** CreateVolume makes volumes that never become available. */
  volumesStayCreating?: boolean;
  /** AttachVolume fails with this error name. */
  attachFails?: string;
  /** A device name in use on every instance that DescribeInstances does not show (a stale view). */
  unseenDevice?: string;
}

/** The zone every local volume and instance is in. */
export const localZone = 'local-1a';

export interface LocalSnapshot {
  snapshotId: string;
  volumeId: string;
  tags: Tag[];
  startTime: Date;
  taken: VolumeSnapshot;
}

export abstract class LocalEc2State {
  protected readonly snapshots = new Map<string, LocalSnapshot>();
  protected next = 1;

  protected readonly clones = new Map<string, ClonedVolume>();
  protected readonly instances = new Map<string, LocalInstance>();
  /** Faults to show; a test sets them before the step that should meet them. */
  readonly faults: LocalEc2Faults = {};
  /** AWS's semantics as enforced; a test makes them stricter (the e2e tests) or leaves them lenient (the demo). */
  readonly semantics: LocalEc2Semantics = { notFoundLooks: 0, tagLagLooks: 0, mayUseKey: () => true };
  /** The customer managed key the snapshots are encrypted with (DR copies are under the DR key). */
  snapshotKmsKeyId: string | undefined;
  protected readonly launchTemplates = new Map<string, LocalLaunchTemplate>();

  constructor(
    protected readonly provider: SnapshotProvider,
    readonly instanceId: string,
    protected readonly volumes: LocalVolume[],
    protected readonly rootDevice = '/dev/xvda',
    protected readonly restore: { workDir?: string; volumesFile?: string } = {},
  ) {
    this.addInstance(instanceId);
    this.writeVolumesFile();
  }

  /** A launch template by name, as the operator made it. */
  addLaunchTemplate(name: string, template: LocalLaunchTemplate): void {
    this.launchTemplates.set(name, template);
  }

  protected fresh(): Unseen {
    return { byId: this.semantics.notFoundLooks, byTag: this.semantics.tagLagLooks };
  }

  /** Whether this look by id sees the resource; a look that does not is counted. */
  protected seesById(unseen: Unseen): boolean {
    if (unseen.byId <= 0) return true;
    unseen.byId--;
    return false;
  }

  protected seesByTag(unseen: Unseen): boolean {
    if (unseen.byTag <= 0) return true;
    unseen.byTag--;
    return false;
  }

  /** The volumes file the host reads (PGSNAP_LOCAL_VOLUMES): each volume id and the directory it is. */
  protected writeVolumesFile(): void {
    if (!this.restore.volumesFile) return;
    const volumes = [
      ...this.volumes.filter((v) => v.holds).map((v) => ({ volumeId: v.volumeId, path: v.holds!.path })),
      ...[...this.clones.values()].map((c) => ({ volumeId: c.volumeId, path: c.path })),
    ];
    writeFileSync(this.restore.volumesFile, `${JSON.stringify({ volumes }, null, 2)}\n`);
  }

  /** Removes every volume a restore made and left (an interrupted demo). */
  async discardAll(): Promise<void> {
    for (const clone of [...this.clones.values()]) {
      await this.provider.discard(clone.path).catch(() => {});
      this.clones.delete(clone.volumeId);
    }
  }

  /** Another instance in the account (a restore's given target), running. */
  addInstance(instanceId: string): void {
    this.instances.set(instanceId, {
      instanceId,
      tags: [],
      state: 'running',
      launched: false,
      unseen: seen(),
    });
  }

  /** The volumes a restore made that still exist (a test checks that nothing is left). */
  get clonedVolumes(): Array<{ volumeId: string; state: string; path: string; tags: Tag[] }> {
    return [...this.clones.values()].map((c) => ({
      volumeId: c.volumeId,
      state: c.state,
      path: c.path,
      tags: c.tags,
    }));
  }

  /** The root volumes of launched instances that still exist (deleted with their instance). */
  get rootVolumes(): Array<{ volumeId: string; instanceId: string; tags: Tag[] }> {
    return [...this.instances.values()]
      .filter((i) => i.root && i.state !== 'terminated')
      .map((i) => ({ volumeId: i.root!.volumeId, instanceId: i.instanceId, tags: i.root!.tags }));
  }

  /** The instances RunInstances launched, with their state. */
  get launchedInstances(): Array<{ instanceId: string; state: string }> {
    return [...this.instances.values()]
      .filter((i) => i.launched)
      .map((i) => ({ instanceId: i.instanceId, state: i.state }));
  }

  protected asClient: EC2Client | undefined;

  /**
   * An EC2Client whose every call this object answers (only the commands below). It is one by its
   * prototype, because the SDK's paginators (paginateDescribeSnapshots…) refuse any other client.
   */
  get client(): EC2Client {
    this.asClient ??= Object.assign(Object.create(EC2Client.prototype) as EC2Client, {
      send: (command: unknown) => this.send(command),
    });
    return this.asClient;
  }

  /** The provider's snapshots of a backup, for the manifest and the drill. */
  takenFor(backupId: string): VolumeSnapshot[] {
    return this.ofBackup(backupId).map((s) => s.taken);
  }

  protected describeInstances(command: DescribeInstancesCommand) {
    const { InstanceIds, Filters } = command.input;
    let found = [...this.instances.values()];
    if (InstanceIds) {
      const missing = InstanceIds.filter((id) => {
        const instance = this.instances.get(id);
        return !instance || !this.seesById(instance.unseen);
      });
      if (missing.length > 0) throw instanceNotFound(missing[0]!);
      found = found.filter((i) => InstanceIds.includes(i.instanceId));
    }
    for (const filter of Filters ?? []) {
      if (filter.Name === 'instance-state-name')
        found = found.filter((i) => filter.Values?.includes(i.state));
      else found = found.filter((i) => matchesTag(i.tags, filter) && this.seesByTag(i.unseen));
    }
    const instances = found.map((instance) => {
      // A launched instance is running from the second look on.
      const shown = { ...instance };
      if (instance.state === 'pending') instance.state = 'running';
      const attached = [
        ...(instance.instanceId === this.instanceId
          ? this.volumes.map((v) => ({ DeviceName: v.device }))
          : []),
        ...(instance.root
          ? [{ DeviceName: this.rootDevice, Ebs: { VolumeId: instance.root.volumeId } }]
          : []),
        ...[...this.clones.values()]
          .filter((c) => c.attachment?.instanceId === instance.instanceId)
          .map((c) => ({ DeviceName: c.attachment!.device, Ebs: { VolumeId: c.volumeId } })),
      ];
      return {
        InstanceId: shown.instanceId,
        RootDeviceName: this.rootDevice,
        State: { Name: shown.state },
        ...(shown.stateReason
          ? { StateReason: { Code: shown.stateReason, Message: shown.stateReason } }
          : {}),
        Placement: { AvailabilityZone: localZone },
        Tags: shown.tags,
        BlockDeviceMappings: attached,
      };
    });
    return { Reservations: instances.length > 0 ? [{ Instances: instances }] : [] };
  }

  protected describeVolumes(command: DescribeVolumesCommand) {
    const source = this.volumes.map((v) => ({
      VolumeId: v.volumeId,
      State: 'in-use',
      Size: 1,
      VolumeType: 'gp3',
      Iops: 3000,
      Throughput: 125,
      Encrypted: false,
      AvailabilityZone: localZone,
      Tags: [] as Tag[],
      Attachments: [{ InstanceId: this.instanceId, Device: v.device, State: 'attached' }],
      unseen: undefined as Unseen | undefined,
    }));
    for (const clone of this.clones.values()) {
      // A volume held in `creating` by the fault becomes available once the fault is lifted.
      if (clone.state === 'creating' && !this.faults.volumesStayCreating) clone.state = 'available';
    }
    const cloned = [...this.clones.values()].map((c) => ({
      VolumeId: c.volumeId,
      SnapshotId: c.snapshotId,
      State: c.state,
      Size: 1,
      VolumeType: 'gp3',
      Encrypted: Boolean(c.kmsKeyId),
      ...(c.kmsKeyId ? { KmsKeyId: c.kmsKeyId } : {}),
      AvailabilityZone: localZone,
      Tags: c.tags,
      Attachments: c.attachment
        ? [{ InstanceId: c.attachment.instanceId, Device: c.attachment.device, State: 'attached' }]
        : [],
      unseen: c.unseen as Unseen | undefined,
    }));
    const roots = this.rootVolumes.map((r) => ({
      VolumeId: r.volumeId,
      State: 'in-use',
      Size: 8,
      VolumeType: 'gp3',
      Encrypted: false,
      AvailabilityZone: localZone,
      Tags: r.tags,
      Attachments: [{ InstanceId: r.instanceId, Device: this.rootDevice, State: 'attached' }],
      unseen: this.instances.get(r.instanceId)!.unseen as Unseen | undefined,
    }));
    let found: Array<{
      VolumeId: string;
      Tags: Tag[];
      Attachments: Array<{ InstanceId: string }>;
      unseen?: Unseen | undefined;
    }> = [...source, ...cloned, ...roots];
    const sees = (v: { unseen?: Unseen | undefined }, look: 'byId' | 'byTag') =>
      !v.unseen || (look === 'byId' ? this.seesById(v.unseen) : this.seesByTag(v.unseen));
    if (command.input.VolumeIds) {
      for (const id of command.input.VolumeIds) {
        const volume = found.find((v) => v.VolumeId === id);
        if (!volume || !sees(volume, 'byId')) throw volumeNotFound(id);
      }
      found = found.filter((v) => command.input.VolumeIds!.includes(v.VolumeId));
    }
    for (const filter of command.input.Filters ?? []) {
      if (filter.Name === 'attachment.instance-id') {
        found = found.filter((v) => v.Attachments.some((a) => filter.Values?.includes(a.InstanceId)));
      } else if (filter.Name === 'volume-id') {
        found = found.filter((v) => filter.Values?.includes(v.VolumeId) && sees(v, 'byId'));
      } else {
        found = found.filter((v) => matchesTag(v.Tags, filter) && sees(v, 'byTag'));
      }
    }
    return { Volumes: found.map(({ unseen: _unseen, ...v }) => v) };
  }

  protected refuseRootVolume(volumeId: string | undefined): void {
    const root = this.rootVolumes.find((r) => r.volumeId === volumeId);
    if (root) {
      throw ec2Error(
        'IncorrectState',
        `Unable to detach root volume '${volumeId}' from instance '${root.instanceId}'`,
      );
    }
  }

  /** The caller's use of a customer managed key through EC2, refused as the IAM evaluation decides. */
  protected requireKey(keyId: string, call: keyof typeof awsFacts.ebsEncryption.byCall): void {
    if (!this.semantics.mayUseKey(keyId, call)) {
      throw ec2Error(
        awsFacts.errors.unauthorized.code,
        `You are not authorized to perform this operation: ${call} needs ${awsFacts.ebsEncryption.byCall[call].join(', ')} on ${keyId}`,
      );
    }
  }

  protected describe(command: DescribeSnapshotsCommand) {
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

  protected describeOne(snapshot: LocalSnapshot) {
    return {
      SnapshotId: snapshot.snapshotId,
      VolumeId: snapshot.volumeId,
      State: 'completed',
      Progress: '100%',
      Encrypted: Boolean(this.snapshotKmsKeyId),
      ...(this.snapshotKmsKeyId ? { KmsKeyId: this.snapshotKmsKeyId } : {}),
      StartTime: snapshot.startTime,
      Tags: snapshot.tags,
    };
  }

  protected ofBackup(backupId: string): LocalSnapshot[] {
    return [...this.snapshots.values()].filter((s) =>
      s.tags.some((t) => t.Key === snapshotTags.backupId && t.Value === backupId),
    );
  }

  abstract send(command: unknown): Promise<unknown>;
}

export function seen(): Unseen {
  return { byId: 0, byTag: 0 };
}

export function instanceNotFound(id: string): Error {
  return ec2Error('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
}

export function volumeNotFound(id: string): Error {
  return ec2Error('InvalidVolume.NotFound', `The volume '${id}' does not exist.`);
}

export function ec2Error(name: string, message: string): Error {
  return Object.assign(new Error(message), { name });
}

export function matchesTag(tags: Tag[], filter: Filter): boolean {
  if (!filter.Name?.startsWith('tag:')) throw new Error(`the local EC2 does not filter by ${filter.Name}`);
  const key = filter.Name.slice('tag:'.length);
  return tags.some((t) => t.Key === key && filter.Values?.includes(t.Value ?? ''));
}

/** A volume id from a ClientToken, the same for the same token (CreateVolume's idempotency). */
export function tokenHex(token: string): string {
  let hash = 0n;
  for (const char of token) hash = (hash * 131n + BigInt(char.codePointAt(0)!)) % 2n ** 68n;
  return hash.toString(16).padStart(17, '0').slice(-17);
}
