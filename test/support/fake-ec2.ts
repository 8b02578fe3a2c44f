/**
 * An in-memory EC2 behind aws-sdk-client-mock: one instance with its attached
 * volumes, and the snapshots CreateSnapshots makes, which complete (or end in
 * error) after a given number of DescribeSnapshots polls. What is left in it at
 * the end is what a user would find in the account.
 */
import {
  CreateSnapshotsCommand,
  DeleteSnapshotCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  EC2Client,
  type Tag,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';

export interface FakeSnapshot {
  SnapshotId: string;
  VolumeId: string;
  State: 'pending' | 'completed' | 'error';
  Tags: Tag[];
  StartTime: Date;
  polls: number;
}

export interface FakeEc2Behaviour {
  /** DescribeSnapshots polls of a snapshot before it is completed. */
  completeAfterPolls: number;
  /** Instead of counting polls: the snapshots are completed once this says so (a simulated clock). */
  completedWhen?: () => boolean;
  /** The snapshot of this volume ends in error at its `atPoll`th poll. */
  errorOn?: { volumeId: string; atPoll: number };
  /** CreateSnapshots fails with this error (after creating nothing). */
  createFails?: Error;
  /** CreateSnapshots answers these errors first, one per call (throttling, EBS capacity), then works. */
  createRefusals?: Error[];
}

export class FakeEc2 {
  readonly mock = mockClient(EC2Client);
  readonly snapshots = new Map<string, FakeSnapshot>();
  /** Every API call, in order, by command name. */
  readonly calls: string[] = [];
  behaviour: FakeEc2Behaviour = { completeAfterPolls: 2 };
  private next = 1;

  constructor(
    readonly instanceId: string,
    readonly volumes: Array<{ volumeId: string; device: string }>,
    readonly rootDevice = '/dev/xvda',
  ) {
    this.install();
  }

  reset(behaviour: FakeEc2Behaviour): void {
    this.snapshots.clear();
    this.calls.length = 0;
    this.behaviour = behaviour;
  }

  private install(): void {
    const { mock } = this;
    mock.on(DescribeInstancesCommand).callsFake(() => {
      this.calls.push('DescribeInstances');
      return {
        Reservations: [{ Instances: [{ InstanceId: this.instanceId, RootDeviceName: this.rootDevice }] }],
      };
    });
    mock.on(DescribeVolumesCommand).callsFake(() => {
      this.calls.push('DescribeVolumes');
      return {
        Volumes: this.volumes.map((v) => ({
          VolumeId: v.volumeId,
          Attachments: [{ InstanceId: this.instanceId, Device: v.device }],
        })),
      };
    });
    mock.on(CreateSnapshotsCommand).callsFake((input) => {
      this.calls.push('CreateSnapshots');
      if (this.behaviour.createFails) throw this.behaviour.createFails;
      const refusal = this.behaviour.createRefusals?.shift();
      if (refusal) throw refusal;
      const excluded = new Set(input.InstanceSpecification.ExcludeDataVolumeIds ?? []);
      const taken = this.volumes.filter(
        (v) =>
          !excluded.has(v.volumeId) &&
          !(input.InstanceSpecification.ExcludeBootVolume && v.device === this.rootDevice),
      );
      const tags: Tag[] = input.TagSpecifications?.[0]?.Tags ?? [];
      const created = taken.map((v) => {
        const snapshot: FakeSnapshot = {
          SnapshotId: `snap-${String(this.next++).padStart(17, '0')}`,
          VolumeId: v.volumeId,
          State: 'pending',
          Tags: tags,
          StartTime: new Date(),
          polls: 0,
        };
        this.snapshots.set(snapshot.SnapshotId, snapshot);
        return snapshot;
      });
      return { Snapshots: created.map(({ polls: _, ...s }) => s) };
    });
    mock.on(DescribeSnapshotsCommand).callsFake((input) => {
      this.calls.push('DescribeSnapshots');
      let found = [...this.snapshots.values()];
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
          Progress: s.State === 'completed' ? '100%' : `${Math.min(99, s.polls * 30)}%`,
          ...(s.State === 'error' ? { StateMessage: 'the volume could not be read' } : {}),
          Tags: s.Tags,
        })),
      };
    });
    mock.on(DeleteSnapshotCommand).callsFake((input) => {
      this.calls.push('DeleteSnapshot');
      this.snapshots.delete(input.SnapshotId);
      return {};
    });
  }

  private poll(snapshot: FakeSnapshot): void {
    if (snapshot.State !== 'pending') return;
    snapshot.polls++;
    const { errorOn, completeAfterPolls, completedWhen } = this.behaviour;
    if (errorOn && errorOn.volumeId === snapshot.VolumeId && snapshot.polls >= errorOn.atPoll) {
      snapshot.State = 'error';
    } else if (completedWhen ? completedWhen() : snapshot.polls >= completeAfterPolls) {
      snapshot.State = 'completed';
    }
  }
}
