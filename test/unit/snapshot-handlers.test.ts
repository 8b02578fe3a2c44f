import {
  CreateSnapshotsCommand,
  DeleteSnapshotCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, test } from 'vitest';
import { handler as checkSnapshots } from '../../functions/check-snapshots.ts';
import { handler as createSnapshots } from '../../functions/create-snapshots.ts';
import { handler as deleteSnapshots } from '../../functions/delete-snapshots.ts';

const ec2 = mockClient(EC2Client);
const instanceId = 'i-0123456789abcdef0';
const backupId = '20261121T143000Z-a1b2c3';
const volumes = {
  root: 'vol-0000000000000000a',
  data: 'vol-0000000000000000b',
  wal: 'vol-0000000000000000c',
  other: 'vol-0000000000000000d',
};

beforeEach(() => {
  ec2.reset();
  ec2.on(DescribeInstancesCommand).resolves({
    Reservations: [{ Instances: [{ InstanceId: instanceId, RootDeviceName: '/dev/xvda' }] }],
  });
  ec2.on(DescribeVolumesCommand).resolves({
    Volumes: [
      ['root', '/dev/xvda'],
      ['data', '/dev/sdf'],
      ['wal', '/dev/sdg'],
      ['other', '/dev/sdh'],
    ].map(([key, device]) => ({
      VolumeId: volumes[key as keyof typeof volumes],
      Attachments: [{ InstanceId: instanceId, Device: device }],
    })),
  });
});

describe('create-snapshots', () => {
  const event = {
    cluster: 'orders-db',
    backupId,
    instanceId,
    volumeIds: [volumes.data, volumes.wal],
    begin: { startLsn: '0/2000028' },
  };

  test('snapshots exactly the cluster volumes in one call, tagged with cluster and backupId', async () => {
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(CreateSnapshotsCommand).resolves({
      Snapshots: [
        { SnapshotId: 'snap-1', VolumeId: volumes.data, State: 'pending' },
        { SnapshotId: 'snap-2', VolumeId: volumes.wal, State: 'pending' },
      ],
    });
    const result = await createSnapshots(event);
    expect(result.snapshots).toEqual([
      { snapshotId: 'snap-1', volumeId: volumes.data, state: 'pending' },
      { snapshotId: 'snap-2', volumeId: volumes.wal, state: 'pending' },
    ]);
    const calls = ec2.commandCalls(CreateSnapshotsCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.args[0].input).toMatchObject({
      InstanceSpecification: {
        InstanceId: instanceId,
        ExcludeBootVolume: true,
        ExcludeDataVolumeIds: [volumes.other],
      },
      TagSpecifications: [
        {
          ResourceType: 'snapshot',
          Tags: expect.arrayContaining([
            { Key: 'pgsnap:cluster', Value: 'orders-db' },
            { Key: 'pgsnap:backup-id', Value: backupId },
          ]),
        },
      ],
    });
  });

  test('includes the boot volume when it holds the cluster', async () => {
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(CreateSnapshotsCommand).resolves({
      Snapshots: [{ SnapshotId: 'snap-1', VolumeId: volumes.root, State: 'pending' }],
    });
    await createSnapshots({ ...event, volumeIds: [volumes.root] });
    expect(ec2.commandCalls(CreateSnapshotsCommand)[0]!.args[0].input.InstanceSpecification).toEqual({
      InstanceId: instanceId,
      ExcludeBootVolume: false,
      ExcludeDataVolumeIds: [volumes.data, volumes.wal, volumes.other],
    });
  });

  test('uses the volumes begin reported when the configuration lists none', async () => {
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(CreateSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: 'snap-1', VolumeId: volumes.wal }] });
    await createSnapshots({ ...event, volumeIds: [], begin: { volumes: [{ volumeId: volumes.wal }] } });
    expect(
      ec2.commandCalls(CreateSnapshotsCommand)[0]!.args[0].input.InstanceSpecification?.ExcludeDataVolumeIds,
    ).toEqual([volumes.data, volumes.other]);
  });

  test('refuses to snapshot when the host could not place part of the cluster on an EBS volume', async () => {
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    const problem = 'pg_wal is on xvdg, which shows no EBS volume id';
    await expect(
      createSnapshots({
        ...event,
        volumeIds: [],
        begin: { volumes: [{ volumeId: volumes.data }], problems: [problem] },
      }),
    ).rejects.toMatchObject({ name: 'PreconditionError', message: expect.stringContaining(problem) });
    expect(ec2.commandCalls(CreateSnapshotsCommand)).toHaveLength(0);
  });

  test('a repeated call returns the set already taken instead of taking a second one', async () => {
    ec2.on(DescribeSnapshotsCommand).resolves({
      Snapshots: [{ SnapshotId: 'snap-1', VolumeId: volumes.data, State: 'pending', StartTime: new Date() }],
    });
    const result = await createSnapshots(event);
    expect(result.snapshots.map((s) => s.snapshotId)).toEqual(['snap-1']);
    expect(ec2.commandCalls(CreateSnapshotsCommand)).toHaveLength(0);
  });

  test('refuses a volume that is not attached to the host, naming it, and takes no snapshot', async () => {
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    const missing = 'vol-0000000000000000e';
    await expect(createSnapshots({ ...event, volumeIds: [volumes.data, missing] })).rejects.toMatchObject({
      name: 'PreconditionError',
      message: expect.stringContaining(missing),
    });
    expect(ec2.commandCalls(CreateSnapshotsCommand)).toHaveLength(0);
  });

  test('fails when CreateSnapshots returned no snapshot of a requested volume', async () => {
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2
      .on(CreateSnapshotsCommand)
      .resolves({ Snapshots: [{ SnapshotId: 'snap-1', VolumeId: volumes.data }] });
    await expect(createSnapshots(event)).rejects.toMatchObject({
      name: 'SnapshotFailedError',
      message: expect.stringContaining(volumes.wal),
    });
  });

  test('a malformed event is refused, naming the field', async () => {
    await expect(createSnapshots({ ...event, instanceId: 42 })).rejects.toMatchObject({
      name: 'InvalidInputError',
      message: expect.stringContaining('instanceId'),
    });
    expect(ec2.commandCalls(CreateSnapshotsCommand)).toHaveLength(0);
  });
});

describe('check-snapshots', () => {
  process.env.PGSNAP_FIRST_POLL_SECONDS = '15';
  process.env.PGSNAP_MAX_POLL_SECONDS = '300';
  process.env.PGSNAP_SNAPSHOT_HOURS = '24';
  const snapshotSet = {
    snapshots: [
      { snapshotId: 'snap-1', volumeId: volumes.data, state: 'pending' },
      { snapshotId: 'snap-2', volumeId: volumes.wal, state: 'pending' },
    ],
    createdAt: new Date().toISOString(),
  };
  const described = (states: Array<[string, string?]>, startTime = new Date(Date.now() - 100_000)) =>
    ec2.on(DescribeSnapshotsCommand).resolves({
      Snapshots: states.map(([State, Progress], index) => ({
        SnapshotId: `snap-${index + 1}`,
        VolumeId: 'vol',
        State: State as 'pending',
        Progress,
        StartTime: startTime,
      })),
    });

  test('while any snapshot is pending, the wait is what its Progress says is left, and the poll remembers what it saw', async () => {
    // 40 % in 100 s: 150 s left by its average rate, but never longer than it has run (100 s).
    described([
      ['completed', '100%'],
      ['pending', '40%'],
    ]);
    const first = await checkSnapshots({ snapshotSet, poll: { attempt: 0 } });
    expect(first).toMatchObject({ completed: false, attempt: 1, progress: '40%' });
    expect([100, 101]).toContain(first.waitSeconds);
    expect(first.seen).toEqual([
      { snapshotId: 'snap-1', percent: 100 },
      { snapshotId: 'snap-2', percent: 40 },
    ]);
    // 40 % more in the 50 s since that poll: the 20 % left is 25 s at that rate.
    described([
      ['completed', '100%'],
      ['pending', '80%'],
    ]);
    const lastPoll = { ...first, at: new Date(Date.now() - 50_000).toISOString() };
    const second = await checkSnapshots({ snapshotSet, poll: lastPoll });
    expect(second).toMatchObject({ completed: false, attempt: 2, progress: '80%' });
    expect([25, 26]).toContain(second.waitSeconds); // the milliseconds this test itself takes
    // Just started, at 0 %: the shortest wait; and after a long time at 0 %, no more than the longest.
    described([['pending', '0%']], new Date());
    expect(await checkSnapshots({ snapshotSet, poll: { attempt: 0 } })).toMatchObject({ waitSeconds: 15 });
    described([['pending', '0%']], new Date(Date.now() - 3_600_000));
    expect(await checkSnapshots({ snapshotSet, poll: { attempt: 5 } })).toMatchObject({ waitSeconds: 300 });
  });

  test('completed once every snapshot is completed', async () => {
    described([
      ['completed', '100%'],
      ['completed', '100%'],
    ]);
    expect(await checkSnapshots({ snapshotSet })).toMatchObject({ completed: true, attempt: 1 });
  });

  test('a snapshot in error fails the backup with SnapshotFailedError, naming it and why', async () => {
    ec2.on(DescribeSnapshotsCommand).resolves({
      Snapshots: [
        { SnapshotId: 'snap-1', VolumeId: volumes.data, State: 'completed' },
        { SnapshotId: 'snap-2', VolumeId: volumes.wal, State: 'error', StateMessage: 'internal error' },
      ],
    });
    await expect(checkSnapshots({ snapshotSet, poll: { attempt: 3 } })).rejects.toMatchObject({
      name: 'SnapshotFailedError',
      message: expect.stringMatching(/snap-2 of volume vol-0+c is in state error \(internal error\)/),
    });
  });

  test('a snapshot that vanished fails the backup, though EC2 answers its id with InvalidSnapshot.NotFound', async () => {
    // EC2 fails DescribeSnapshots with SnapshotIds as a whole when one id does not exist; a filter does not.
    const notFound = Object.assign(new Error("The snapshot 'snap-2' does not exist."), {
      name: 'InvalidSnapshot.NotFound',
    });
    ec2.on(DescribeSnapshotsCommand, { SnapshotIds: ['snap-1', 'snap-2'] }).rejects(notFound);
    ec2
      .on(DescribeSnapshotsCommand, { Filters: [{ Name: 'snapshot-id', Values: ['snap-1', 'snap-2'] }] })
      .resolves({ Snapshots: [{ SnapshotId: 'snap-1', VolumeId: volumes.data, State: 'completed' }] });
    const old = { ...snapshotSet, createdAt: new Date(Date.now() - 3_600_000).toISOString() };
    await expect(checkSnapshots({ snapshotSet: old })).rejects.toMatchObject({
      name: 'SnapshotFailedError',
      message: expect.stringContaining('snap-2 no longer exists'),
    });
  });

  test('a snapshot not visible yet just after it was taken is pending, not failed (eventual consistency)', async () => {
    described([['completed', '100%']]);
    expect(await checkSnapshots({ snapshotSet })).toMatchObject({ completed: false, progress: '0%' });
  });

  test('snapshots still pending past the bound fail the backup with TimeoutError', async () => {
    described([
      ['pending', '10%'],
      ['pending', '12%'],
    ]);
    const old = { ...snapshotSet, createdAt: new Date(Date.now() - 25 * 3_600_000).toISOString() };
    await expect(checkSnapshots({ snapshotSet: old, poll: { attempt: 40 } })).rejects.toMatchObject({
      name: 'TimeoutError',
      message: expect.stringContaining('10%'),
    });
  });
});

describe('delete-snapshots', () => {
  test('deletes every snapshot tagged with the backupId, across pages', async () => {
    ec2
      .on(DescribeSnapshotsCommand)
      .resolvesOnce({ Snapshots: [{ SnapshotId: 'snap-1' }], NextToken: 'next' })
      .resolvesOnce({ Snapshots: [{ SnapshotId: 'snap-2' }] });
    ec2.on(DeleteSnapshotCommand).resolves({});
    expect(await deleteSnapshots({ backupId })).toEqual({ deleted: ['snap-1', 'snap-2'] });
    expect(ec2.commandCalls(DescribeSnapshotsCommand)[0]!.args[0].input).toMatchObject({
      OwnerIds: ['self'],
      Filters: [{ Name: 'tag:pgsnap:backup-id', Values: [backupId] }],
    });
    expect(ec2.commandCalls(DeleteSnapshotCommand).map((c) => c.args[0].input.SnapshotId)).toEqual([
      'snap-1',
      'snap-2',
    ]);
  });

  test("EC2's refusal keeps its name, so the step's Retry sees it", async () => {
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: 'snap-1' }] });
    const busy = Object.assign(new Error('snapshot is in use'), { name: 'InvalidSnapshot.InUse' });
    ec2.on(DeleteSnapshotCommand).rejects(busy);
    await expect(deleteSnapshots({ backupId })).rejects.toMatchObject({ name: 'InvalidSnapshot.InUse' });
  });
});
