/**
 * The part of the EC2 API the backup's and the restore's Lambdas call,
 * answered on one machine by a local snapshot provider (btrfs or copy): the
 * host is one "instance", each of the cluster's directories one "volume", and
 * CreateSnapshots takes the provider's snapshots of the requested volumes.
 * For a restore, CreateVolume makes a writable clone of a snapshot (the
 * provider's restore), AttachVolume marks it attached, and the host finds it
 * through the local volumes file (`PGSNAP_LOCAL_VOLUMES`) where `pgsnap
 * mount` looks instead of NVMe serials; RunInstances "launches" another
 * instance id on this same host. `pgsnap demo` and the e2e tests give it to
 * the very handlers that run in Lambda, so the state machines' EC2 steps run
 * unchanged. A local snapshot is complete when taken, a clone available when made.
 */
import { writeFileSync } from 'node:fs';
import {
  AttachVolumeCommand,
  CreateSnapshotsCommand,
  CreateVolumeCommand,
  DeleteSnapshotCommand,
  DeleteVolumeCommand,
  DescribeInstancesCommand,
  DescribeLaunchTemplateVersionsCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  DetachVolumeCommand,
  EC2Client,
  type Filter,
  RunInstancesCommand,
  type Tag,
  TerminateInstancesCommand,
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
interface ClonedVolume {
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
}

interface Unseen {
  byId: number;
  byTag: number;
}

interface LocalInstance {
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

  private readonly clones = new Map<string, ClonedVolume>();
  private readonly instances = new Map<string, LocalInstance>();
  /** Faults to show; a test sets them before the step that should meet them. */
  readonly faults: LocalEc2Faults = {};
  /** AWS's semantics as enforced; a test makes them stricter (the e2e tests) or leaves them lenient (the demo). */
  readonly semantics: LocalEc2Semantics = { notFoundLooks: 0, tagLagLooks: 0, mayUseKey: () => true };
  /** The customer managed key the snapshots are encrypted with (DR copies are under the DR key). */
  snapshotKmsKeyId: string | undefined;
  private readonly launchTemplates = new Map<string, LocalLaunchTemplate>();

  constructor(
    private readonly provider: SnapshotProvider,
    readonly instanceId: string,
    private readonly volumes: LocalVolume[],
    private readonly rootDevice = '/dev/xvda',
    private readonly restore: { workDir?: string; volumesFile?: string } = {},
  ) {
    this.addInstance(instanceId);
    this.writeVolumesFile();
  }

  /** A launch template by name, as the operator made it. */
  addLaunchTemplate(name: string, template: LocalLaunchTemplate): void {
    this.launchTemplates.set(name, template);
  }

  private fresh(): Unseen {
    return { byId: this.semantics.notFoundLooks, byTag: this.semantics.tagLagLooks };
  }

  /** Whether this look by id sees the resource; a look that does not is counted. */
  private seesById(unseen: Unseen): boolean {
    if (unseen.byId <= 0) return true;
    unseen.byId--;
    return false;
  }

  private seesByTag(unseen: Unseen): boolean {
    if (unseen.byTag <= 0) return true;
    unseen.byTag--;
    return false;
  }

  /** The volumes file the host reads (PGSNAP_LOCAL_VOLUMES): each volume id and the directory it is. */
  private writeVolumesFile(): void {
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

  private asClient: EC2Client | undefined;

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

  async send(command: unknown): Promise<unknown> {
    if (command instanceof DescribeInstancesCommand) return this.describeInstances(command);
    if (command instanceof DescribeVolumesCommand) return this.describeVolumes(command);
    if (command instanceof CreateVolumeCommand) return this.createVolume(command);
    if (command instanceof AttachVolumeCommand) return this.attachVolume(command);
    if (command instanceof DetachVolumeCommand) return this.detachVolume(command);
    if (command instanceof DeleteVolumeCommand) return this.deleteVolume(command);
    if (command instanceof RunInstancesCommand) return this.runInstance(command);
    if (command instanceof DescribeLaunchTemplateVersionsCommand) return this.describeLaunchTemplate(command);
    if (command instanceof TerminateInstancesCommand) {
      const ids = command.input.InstanceIds ?? [];
      for (const id of ids) {
        const instance = this.instances.get(id);
        if (!instance || !this.seesById(instance.unseen)) throw instanceNotFound(id);
      }
      for (const id of ids) {
        const instance = this.instances.get(id)!;
        if (id !== this.instanceId) instance.state = 'terminated';
      }
      return {};
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

  private describeInstances(command: DescribeInstancesCommand) {
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

  private describeVolumes(command: DescribeVolumesCommand) {
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

  private async createVolume(command: CreateVolumeCommand) {
    const { SnapshotId, TagSpecifications, ClientToken, AvailabilityZone } = command.input;
    if (AvailabilityZone !== localZone) {
      throw ec2Error(
        'InvalidZone.NotFound',
        `The zone '${AvailabilityZone}' does not exist (the local zone is ${localZone})`,
      );
    }
    const again = [...this.clones.values()].find(
      (c) => ClientToken && c.volumeId === `vol-${tokenHex(ClientToken)}`,
    );
    if (again) return { VolumeId: again.volumeId, State: 'creating' };
    const snapshot = this.snapshots.get(SnapshotId ?? '');
    if (!snapshot) throw ec2Error('InvalidSnapshot.NotFound', `The snapshot '${SnapshotId}' does not exist.`);
    // A volume from an encrypted snapshot is encrypted, with the snapshot's key unless another is named.
    const kmsKeyId = command.input.KmsKeyId ?? this.snapshotKmsKeyId;
    if (kmsKeyId) this.requireKey(kmsKeyId, 'CreateVolume');
    if (!this.restore.workDir)
      throw new Error('the local EC2 was made without a directory for restored volumes');
    const volumeId = ClientToken
      ? `vol-${tokenHex(ClientToken)}`
      : `vol-${(this.next++).toString(16).padStart(17, '0')}`;
    const path = this.provider.scratchTarget(snapshot.taken, this.restore.workDir, volumeId);
    await this.provider.restore(snapshot.taken, path);
    this.clones.set(volumeId, {
      volumeId,
      snapshotId: snapshot.snapshotId,
      path,
      tags: TagSpecifications?.find((t) => t.ResourceType === 'volume')?.Tags ?? [],
      state: this.faults.volumesStayCreating ? 'creating' : 'available',
      ...(kmsKeyId ? { kmsKeyId } : {}),
      unseen: this.fresh(),
    });
    this.writeVolumesFile();
    return { VolumeId: volumeId, State: 'creating' };
  }

  private attachVolume(command: AttachVolumeCommand) {
    const { VolumeId, InstanceId, Device } = command.input;
    const clone = this.clones.get(VolumeId ?? '');
    if (!clone || !this.seesById(clone.unseen)) throw volumeNotFound(VolumeId ?? '');
    const instance = this.instances.get(InstanceId ?? '');
    if (!instance || !this.seesById(instance.unseen)) throw instanceNotFound(InstanceId ?? '');
    if (this.faults.attachFails)
      throw ec2Error(this.faults.attachFails, `local fault: attaching ${clone.volumeId} fails`);
    if (clone.state !== 'available')
      throw ec2Error('IncorrectState', `vol ${clone.volumeId} is ${clone.state}`);
    const taken = [
      ...(instance.instanceId === this.instanceId ? this.volumes.map((v) => v.device) : []),
      ...(instance.root ? [this.rootDevice] : []),
      ...[...this.clones.values()]
        .filter((c) => c.attachment?.instanceId === instance.instanceId)
        .map((c) => c.attachment!.device),
      ...(this.faults.unseenDevice ? [this.faults.unseenDevice] : []),
    ];
    if (taken.includes(Device ?? '')) {
      const inUse = awsFacts.errors.attachmentPointInUse;
      throw ec2Error(inUse.code, inUse.message(Device!, instance.instanceId));
    }
    // EC2 creates a grant on the volume's key with the caller's identity (EBS encryption requirements).
    if (clone.kmsKeyId) this.requireKey(clone.kmsKeyId, 'AttachVolume');
    clone.attachment = { instanceId: instance.instanceId, device: Device! };
    clone.state = 'in-use';
    return { State: 'attaching' };
  }

  private detachVolume(command: DetachVolumeCommand) {
    this.refuseRootVolume(command.input.VolumeId);
    const clone = this.clones.get(command.input.VolumeId ?? '');
    if (!clone)
      throw ec2Error('InvalidVolume.NotFound', `The volume '${command.input.VolumeId}' does not exist.`);
    delete clone.attachment;
    clone.state = 'available';
    return { State: 'detaching' };
  }

  private async deleteVolume(command: DeleteVolumeCommand) {
    this.refuseRootVolume(command.input.VolumeId);
    const clone = this.clones.get(command.input.VolumeId ?? '');
    if (!clone)
      throw ec2Error('InvalidVolume.NotFound', `The volume '${command.input.VolumeId}' does not exist.`);
    if (clone.attachment) throw ec2Error('VolumeInUse', `Volume ${clone.volumeId} is currently attached`);
    await this.provider.discard(clone.path);
    this.clones.delete(clone.volumeId);
    this.writeVolumesFile();
    return {};
  }

  private runInstance(command: RunInstancesCommand) {
    const { LaunchTemplate, SubnetId, TagSpecifications } = command.input;
    const template =
      this.launchTemplates.get(
        LaunchTemplate?.LaunchTemplateName ?? LaunchTemplate?.LaunchTemplateId ?? '',
      ) ?? {};
    if (template.networkInterfaces && SubnetId) {
      const clash = awsFacts.errors.networkInterfacesWithSubnet;
      throw ec2Error(clash.code, clash.message);
    }
    const instanceId = `i-${(this.next++).toString(16).padStart(17, '0')}`;
    const volumeId = `vol-${(this.next++).toString(16).padStart(17, '0')}`;
    const tagsFor = (type: string) => TagSpecifications?.find((t) => t.ResourceType === type)?.Tags ?? [];
    // The root volume is under the template's key: without the caller's grant EC2 ends the launch.
    const keyRefused =
      template.rootKmsKeyId && !this.semantics.mayUseKey(template.rootKmsKeyId, 'RunInstances');
    this.instances.set(instanceId, {
      instanceId,
      tags: tagsFor('instance'),
      state: keyRefused ? 'terminated' : 'pending',
      ...(keyRefused ? { stateReason: 'Client.InternalError: Client error on launch' } : {}),
      launched: true,
      root: {
        volumeId,
        tags: tagsFor('volume'),
        ...(template.rootKmsKeyId ? { kmsKeyId: template.rootKmsKeyId } : {}),
      },
      unseen: this.fresh(),
    });
    return {
      Instances: [
        { InstanceId: instanceId, State: { Name: 'pending' }, Placement: { AvailabilityZone: localZone } },
      ],
    };
  }

  private describeLaunchTemplate(command: DescribeLaunchTemplateVersionsCommand) {
    const name = command.input.LaunchTemplateName ?? command.input.LaunchTemplateId ?? '';
    const template = this.launchTemplates.get(name) ?? {};
    return {
      LaunchTemplateVersions: [
        {
          LaunchTemplateName: name,
          VersionNumber: 1,
          LaunchTemplateData: template.networkInterfaces
            ? {
                NetworkInterfaces: [
                  { DeviceIndex: 0, Groups: ['sg-0123456789abcdef0'], SubnetId: 'subnet-0fedcba9876543210' },
                ],
              }
            : {},
        },
      ],
    };
  }

  /** A running instance's root volume can be neither detached nor deleted (it goes with the instance). */
  private refuseRootVolume(volumeId: string | undefined): void {
    const root = this.rootVolumes.find((r) => r.volumeId === volumeId);
    if (root) {
      throw ec2Error(
        'IncorrectState',
        `Unable to detach root volume '${volumeId}' from instance '${root.instanceId}'`,
      );
    }
  }

  /** The caller's use of a customer managed key through EC2, refused as the IAM evaluation decides. */
  private requireKey(keyId: string, call: keyof typeof awsFacts.ebsEncryption.byCall): void {
    if (!this.semantics.mayUseKey(keyId, call)) {
      throw ec2Error(
        awsFacts.errors.unauthorized.code,
        `You are not authorized to perform this operation: ${call} needs ${awsFacts.ebsEncryption.byCall[call].join(', ')} on ${keyId}`,
      );
    }
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
      Encrypted: Boolean(this.snapshotKmsKeyId),
      ...(this.snapshotKmsKeyId ? { KmsKeyId: this.snapshotKmsKeyId } : {}),
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

function seen(): Unseen {
  return { byId: 0, byTag: 0 };
}

function instanceNotFound(id: string): Error {
  return ec2Error('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
}

function volumeNotFound(id: string): Error {
  return ec2Error('InvalidVolume.NotFound', `The volume '${id}' does not exist.`);
}

function ec2Error(name: string, message: string): Error {
  return Object.assign(new Error(message), { name });
}

function matchesTag(tags: Tag[], filter: Filter): boolean {
  if (!filter.Name?.startsWith('tag:')) throw new Error(`the local EC2 does not filter by ${filter.Name}`);
  const key = filter.Name.slice('tag:'.length);
  return tags.some((t) => t.Key === key && filter.Values?.includes(t.Value ?? ''));
}

/** A volume id from a ClientToken, the same for the same token (CreateVolume's idempotency). */
function tokenHex(token: string): string {
  let hash = 0n;
  for (const char of token) hash = (hash * 131n + BigInt(char.codePointAt(0)!)) % 2n ** 68n;
  return hash.toString(16).padStart(17, '0').slice(-17);
}
