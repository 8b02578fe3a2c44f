/**
 * A repeated "Snapshot the cluster's volumes" (a Step Functions retry, a
 * Lambda invoked twice) takes no second snapshot set, also while EC2 does not
 * yet show the tags of the first one: the call is recorded in the manifest
 * before it is made and the ids right after. aws-sdk-client-mock, because
 * moto shows tags at once and so cannot produce the state.
 */
import {
  CreateSnapshotsCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, test } from 'vitest';
import { createSnapshotSet } from '#domain/ebs/create-snapshot-set';
import { Repository } from '#domain/repository/repository';
import { MemoryStore } from '../support/memory-store.ts';
import { startedManifest } from '../support/started-manifest.ts';

const ec2 = mockClient(EC2Client);
const client = new EC2Client({ region: 'eu-west-1' });
const instanceId = 'i-0123456789abcdef0';
const backupId = '20261121T143000Z-a1b2c3';
const cluster = 'orders-db';
const volumeIds = ['vol-0000000000000000b', 'vol-0000000000000000c'];

let repository: Repository;
beforeEach(async () => {
  ec2.reset();
  ec2.on(DescribeInstancesCommand).resolves({
    Reservations: [{ Instances: [{ InstanceId: instanceId, RootDeviceName: '/dev/xvda' }] }],
  });
  ec2.on(DescribeVolumesCommand).resolves({
    Volumes: volumeIds.map((VolumeId, i) => ({
      VolumeId,
      Attachments: [{ InstanceId: instanceId, Device: `/dev/sd${'fg'[i]}` }],
    })),
  });
  // The tags of a set just taken are not visible yet: EC2 is eventually consistent.
  ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
  repository = new Repository(new MemoryStore(), cluster);
  await repository.writeManifest(startedManifest(cluster, backupId));
});

const request = () => ({ cluster, backupId, instanceId, volumeIds, repository });
const taken = {
  Snapshots: volumeIds.map((VolumeId, i) => ({
    SnapshotId: `snap-${i + 1}`,
    VolumeId,
    State: 'pending' as const,
  })),
};

describe('createSnapshotSet with the repository', () => {
  test('a repeated call returns the recorded set and calls CreateSnapshots once', async () => {
    ec2.on(CreateSnapshotsCommand).resolves(taken);
    const first = await createSnapshotSet(client, request());
    const again = await createSnapshotSet(client, request());
    expect(again.snapshots).toEqual(first.snapshots);
    expect(ec2.commandCalls(CreateSnapshotsCommand)).toHaveLength(1);
    const manifest = (await repository.readManifest(backupId))!;
    expect(manifest.state).toBe('snapshotting');
    expect(manifest.snapshots.map((s) => s.snapshotId)).toEqual(['snap-1', 'snap-2']);
  });

  test('after a call whose outcome is unknown (InternalError), a retry takes no second set and says why', async () => {
    const internal = Object.assign(new Error('An internal error has occurred'), {
      name: 'InternalError',
      $metadata: { httpStatusCode: 500 },
    });
    ec2.on(CreateSnapshotsCommand).rejectsOnce(internal).resolves(taken);
    await expect(createSnapshotSet(client, request())).rejects.toMatchObject({ name: 'InternalError' });
    await expect(createSnapshotSet(client, request())).rejects.toMatchObject({
      name: 'SnapshotSetUnknownError',
      message: expect.stringContaining(backupId),
    });
    expect(ec2.commandCalls(CreateSnapshotsCommand)).toHaveLength(1);
  });

  test('after a call EC2 refused (RequestLimitExceeded, HTTP 400), a retry takes the set', async () => {
    const throttled = Object.assign(new Error('Request limit exceeded.'), {
      name: 'RequestLimitExceeded',
      $metadata: { httpStatusCode: 400 },
    });
    ec2.on(CreateSnapshotsCommand).rejectsOnce(throttled).resolves(taken);
    await expect(createSnapshotSet(client, request())).rejects.toMatchObject({
      name: 'RequestLimitExceeded',
    });
    expect((await repository.readManifest(backupId))!.state).toBe('started');
    const set = await createSnapshotSet(client, request());
    expect(set.snapshots.map((s) => s.snapshotId)).toEqual(['snap-1', 'snap-2']);
    expect(ec2.commandCalls(CreateSnapshotsCommand)).toHaveLength(2);
  });

  test('a set the tags show after an unknown outcome is recorded and returned', async () => {
    ec2.on(CreateSnapshotsCommand).rejectsOnce(new Error('socket hang up'));
    await expect(createSnapshotSet(client, request())).rejects.toThrow('socket hang up');
    ec2.on(DescribeSnapshotsCommand).resolves({
      Snapshots: taken.Snapshots.map((s) => ({ ...s, StartTime: new Date() })),
    });
    const set = await createSnapshotSet(client, request());
    expect(set.snapshots.map((s) => s.snapshotId)).toEqual(['snap-1', 'snap-2']);
    expect(ec2.commandCalls(CreateSnapshotsCommand)).toHaveLength(1);
    expect((await repository.readManifest(backupId))!.snapshots).toHaveLength(2);
  });
});
