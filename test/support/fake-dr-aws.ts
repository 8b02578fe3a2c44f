/**
 * An in-memory EC2 that knows regions and accounts (by the client's region
 * and access key), with KMS and STS, behind aws-sdk-client-mock: enough for a
 * backup, its DR copies and retention. What is left in it at the end is what
 * a user would find in each account and region.
 */
import {
  CopySnapshotCommand,
  CreateSnapshotsCommand,
  DeleteSnapshotCommand,
  DescribeInstancesCommand,
  DescribeLockedSnapshotsCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  EC2Client,
  ModifySnapshotAttributeCommand,
  type Tag,
} from '@aws-sdk/client-ec2';
import {
  CreateGrantCommand,
  DescribeKeyCommand,
  KMSClient,
  ListGrantsCommand,
  RevokeGrantCommand,
} from '@aws-sdk/client-kms';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';

export interface FakeSnapshot {
  SnapshotId: string;
  region: string;
  /** The account whose credentials made it. */
  owner: string;
  VolumeId: string;
  State: 'pending' | 'completed' | 'error';
  Tags: Tag[];
  StartTime: Date;
  Encrypted: boolean;
  KmsKeyId?: string;
  polls: number;
  /** Accounts it is shared with. */
  sharedWith: Set<string>;
  locked?: boolean;
}

export interface FakeDrBehaviour {
  /** A DR copy ends in error at its first poll. */
  copyFails?: boolean;
}

export class FakeDrAws {
  readonly ec2 = mockClient(EC2Client);
  readonly kms = mockClient(KMSClient);
  readonly sts = mockClient(STSClient);
  readonly snapshots = new Map<string, FakeSnapshot>();
  readonly grants = new Map<string, { keyId: string; grantee: string; name: string }>();
  behaviour: FakeDrBehaviour = {};
  private next = 1;

  constructor(
    readonly source: { account: string; region: string; accessKeyId: string; keyArn: string },
    readonly dr: { account: string; accessKeyId: string },
    readonly instanceId: string,
    readonly volumes: Array<{ volumeId: string; device: string }>,
  ) {
    this.install();
  }

  reset(behaviour: FakeDrBehaviour = {}): void {
    this.snapshots.clear();
    this.grants.clear();
    this.behaviour = behaviour;
  }

  /** Snapshots in one region, as its owner would list them. */
  in(region: string, owner: string): FakeSnapshot[] {
    return [...this.snapshots.values()].filter((s) => s.region === region && s.owner === owner);
  }

  /** A completed snapshot made outside the workflow (an earlier backup's). */
  add(snapshot: Partial<FakeSnapshot> & { SnapshotId: string; region: string; owner: string }): void {
    this.snapshots.set(snapshot.SnapshotId, {
      VolumeId: 'vol-earlier',
      State: 'completed',
      Tags: [],
      StartTime: new Date(),
      Encrypted: true,
      polls: 0,
      sharedWith: new Set(),
      ...snapshot,
    });
  }

  private async where(getClient: () => EC2Client) {
    const client = getClient();
    const credentials = await client.config.credentials();
    const owner = credentials.accessKeyId === this.dr.accessKeyId ? this.dr.account : this.source.account;
    return { region: await client.config.region(), owner };
  }

  private install(): void {
    const { ec2 } = this;
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [{ Instances: [{ InstanceId: this.instanceId, RootDeviceName: '/dev/xvda' }] }],
    });
    ec2.on(DescribeVolumesCommand).resolves({
      Volumes: this.volumes.map((v) => ({
        VolumeId: v.volumeId,
        Attachments: [{ InstanceId: this.instanceId, Device: v.device }],
      })),
    });
    ec2.on(CreateSnapshotsCommand).callsFake(async (input, getClient) => {
      const { region, owner } = await this.where(getClient);
      const excluded = new Set(input.InstanceSpecification.ExcludeDataVolumeIds ?? []);
      const taken = this.volumes.filter(
        (v) =>
          !excluded.has(v.volumeId) &&
          !(input.InstanceSpecification.ExcludeBootVolume && v.device === '/dev/xvda'),
      );
      const created = taken.map((v) => {
        const id = `snap-${String(this.next++).padStart(17, '0')}`;
        this.snapshots.set(id, {
          SnapshotId: id,
          region,
          owner,
          VolumeId: v.volumeId,
          State: 'pending',
          Tags: input.TagSpecifications?.[0]?.Tags ?? [],
          StartTime: new Date(),
          Encrypted: true,
          KmsKeyId: this.source.keyArn,
          polls: 0,
          sharedWith: new Set(),
        });
        return { SnapshotId: id, VolumeId: v.volumeId, State: 'pending' };
      });
      return { Snapshots: created };
    });
    ec2.on(CopySnapshotCommand).callsFake(async (input, getClient) => {
      const { region, owner } = await this.where(getClient);
      const original = this.snapshots.get(input.SourceSnapshotId);
      if (!original || original.region !== input.SourceRegion) {
        throw Object.assign(new Error(`${input.SourceSnapshotId} does not exist`), {
          name: 'InvalidSnapshot.NotFound',
        });
      }
      if (original.owner !== owner && !original.sharedWith.has(owner)) {
        throw Object.assign(new Error(`${input.SourceSnapshotId} is not shared with ${owner}`), {
          name: 'InvalidSnapshot.NotFound',
        });
      }
      const id = `snap-dr${String(this.next++).padStart(15, '0')}`;
      this.snapshots.set(id, {
        SnapshotId: id,
        region,
        owner,
        VolumeId: original.VolumeId,
        State: 'pending',
        Tags: input.TagSpecifications?.[0]?.Tags ?? [],
        StartTime: new Date(),
        Encrypted: true,
        KmsKeyId: input.KmsKeyId,
        polls: 0,
        sharedWith: new Set(),
      });
      return { SnapshotId: id };
    });
    ec2.on(DescribeSnapshotsCommand).callsFake(async (input, getClient) => {
      const { region, owner } = await this.where(getClient);
      let found = this.in(region, owner);
      if (input.SnapshotIds) {
        found = found.filter((s) => input.SnapshotIds.includes(s.SnapshotId));
        for (const snapshot of found) this.poll(snapshot);
      }
      for (const filter of input.Filters ?? []) {
        const key = String(filter.Name).replace(/^tag:/, '');
        found = found.filter((s) => s.Tags.some((t) => t.Key === key && filter.Values.includes(t.Value)));
      }
      return {
        Snapshots: found.map((s) => ({
          SnapshotId: s.SnapshotId,
          VolumeId: s.VolumeId,
          State: s.State,
          StartTime: s.StartTime,
          Progress: s.State === 'completed' ? '100%' : '50%',
          Encrypted: s.Encrypted,
          KmsKeyId: s.KmsKeyId,
          Tags: s.Tags,
        })),
      };
    });
    ec2.on(ModifySnapshotAttributeCommand).callsFake(async (input, getClient) => {
      const { region, owner } = await this.where(getClient);
      const snapshot = this.snapshots.get(input.SnapshotId);
      if (!snapshot || snapshot.region !== region || snapshot.owner !== owner) {
        throw Object.assign(new Error('not found'), { name: 'InvalidSnapshot.NotFound' });
      }
      for (const account of input.UserIds ?? []) {
        if (input.OperationType === 'add') snapshot.sharedWith.add(account);
        else snapshot.sharedWith.delete(account);
      }
      return {};
    });
    ec2.on(DeleteSnapshotCommand).callsFake(async (input, getClient) => {
      const { region, owner } = await this.where(getClient);
      const snapshot = this.snapshots.get(input.SnapshotId);
      if (!snapshot || snapshot.region !== region || snapshot.owner !== owner) {
        throw Object.assign(new Error('not found'), { name: 'InvalidSnapshot.NotFound' });
      }
      if (snapshot.locked) {
        throw Object.assign(new Error(`${input.SnapshotId} is locked`), { name: 'SnapshotLocked' });
      }
      this.snapshots.delete(input.SnapshotId);
      return {};
    });

    ec2.on(DescribeLockedSnapshotsCommand).callsFake(async (input, getClient) => {
      const { region, owner } = await this.where(getClient);
      const locked = (input.SnapshotIds ?? []).filter((id: string) => {
        const snapshot = this.snapshots.get(id);
        return snapshot?.locked && snapshot.region === region && snapshot.owner === owner;
      });
      return {
        Snapshots: locked.map((SnapshotId: string) => ({ SnapshotId, LockState: 'governance' as const })),
      };
    });

    this.kms.on(DescribeKeyCommand).callsFake((input) => ({
      KeyMetadata: { KeyId: input.KeyId, KeyManager: 'CUSTOMER' },
    }));
    this.kms.on(CreateGrantCommand).callsFake((input) => {
      const grantId = `grant-${this.grants.size + 1}`;
      this.grants.set(grantId, { keyId: input.KeyId, grantee: input.GranteePrincipal, name: input.Name });
      return { GrantId: grantId };
    });
    this.kms.on(ListGrantsCommand).callsFake((input) => ({
      Grants: [...this.grants.entries()]
        .filter(([, g]) => g.keyId === input.KeyId)
        .map(([GrantId, g]) => ({ GrantId, Name: g.name, GranteePrincipal: g.grantee })),
    }));
    this.kms.on(RevokeGrantCommand).callsFake((input) => {
      this.grants.delete(input.GrantId);
      return {};
    });
    this.sts.on(AssumeRoleCommand).resolves({
      Credentials: {
        AccessKeyId: this.dr.accessKeyId,
        SecretAccessKey: 'secret',
        SessionToken: 'token',
        Expiration: new Date(Date.now() + 900_000),
      },
    });
  }

  private poll(snapshot: FakeSnapshot): void {
    if (snapshot.State !== 'pending') return;
    snapshot.polls++;
    const isCopy = snapshot.SnapshotId.startsWith('snap-dr');
    if (isCopy && this.behaviour.copyFails) snapshot.State = 'error';
    else if (snapshot.polls >= 2) snapshot.State = 'completed';
  }
}
