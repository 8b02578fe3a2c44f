import {
  AttachVolumeCommand,
  CreateSnapshotsCommand,
  CreateVolumeCommand,
  DeleteSnapshotCommand,
  DeleteVolumeCommand,
  DescribeInstancesCommand,
  DescribeLaunchTemplateVersionsCommand,
  DescribeSnapshotsCommand,
  DescribeVolumeStatusCommand,
  DescribeVolumesCommand,
  DetachVolumeCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { snapshotTags } from '#domain/ebs/snapshots';
import { assumedDefaultMiBps } from '#domain/restore/full-speed';
import { awsFacts } from './aws-facts.ts';

import {
  ec2Error,
  instanceNotFound,
  LocalEc2State,
  type LocalSnapshot,
  localZone,
  tokenHex,
  volumeNotFound,
} from './local-ec2-state.ts';

export {
  type LocalEc2Faults,
  type LocalEc2Semantics,
  type LocalLaunchTemplate,
  type LocalVolume,
  localZone,
} from './local-ec2-state.ts';

export class LocalEc2 extends LocalEc2State {
  async send(command: unknown): Promise<unknown> {
    if (command instanceof DescribeInstancesCommand) return this.describeInstances(command);
    if (command instanceof DescribeVolumesCommand) return this.describeVolumes(command);
    if (command instanceof DescribeVolumeStatusCommand) return this.describeVolumeStatus(command);
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
      createdAt: Date.now(),
      sizeGiB: command.input.Size ?? 1,
      ...(command.input.VolumeInitializationRate
        ? { initializationRate: command.input.VolumeInitializationRate }
        : {}),
    });
    this.writeVolumesFile();
    return { VolumeId: volumeId, State: 'creating' };
  }

  /**
   * Each volume's initialization as EBS reports it (awsFacts.volumeInitialization): the size fetched at the
   * rate asked for, or at pgsnap's assumed default rate; an estimate of the time left only at a provisioned
   * rate. The local volumes are small, so a restore here is at full speed within seconds.
   */
  private describeVolumeStatus(command: DescribeVolumeStatusCommand) {
    const facts = awsFacts.volumeInitialization;
    const VolumeStatuses = (command.input.VolumeIds ?? []).map((id) => {
      const clone = this.clones.get(id);
      if (!clone || !this.seesById(clone.unseen)) throw volumeNotFound(id);
      const bytes = clone.sizeGiB * 2 ** 30;
      const rate = (clone.initializationRate ?? assumedDefaultMiBps) * 2 ** 20;
      const fetched = Math.min(bytes, ((Date.now() - clone.createdAt) / 1000) * rate);
      const provisioned = clone.initializationRate !== undefined;
      return {
        VolumeId: id,
        AvailabilityZone: localZone,
        VolumeStatus: { Status: 'ok' },
        InitializationStatusDetails: {
          InitializationType: provisioned ? facts.estimatedTimeOnlyFor : facts.types[0],
          Progress: Math.floor((fetched / bytes) * 100),
          ...(provisioned ? { EstimatedTimeToCompleteInSeconds: Math.ceil((bytes - fetched) / rate) } : {}),
        },
      };
    });
    return { VolumeStatuses };
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
}
