/**
 * A snapshot under an EBS snapshot lock is told by DescribeLockedSnapshots
 * after a failed DeleteSnapshot, not by the failure's name (the error EC2
 * answers a delete of a locked snapshot with is not among its documented
 * error codes). aws-sdk-client-mock: moto 5.2.1 has neither LockSnapshot nor
 * DescribeLockedSnapshots.
 */
import {
  DeleteSnapshotCommand,
  DescribeLockedSnapshotsCommand,
  DescribeSnapshotsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, expect, test } from 'vitest';
import { ebsSnapshotDeleter } from '#domain/ebs/retention';
import type { Manifest } from '#domain/repository/manifest';
import { startedManifest } from '../support/started-manifest.ts';

const ec2 = mockClient(EC2Client);
const deleter = ebsSnapshotDeleter(new EC2Client({ region: 'eu-west-1' }), 'orders-db');
const backup: Manifest = {
  ...startedManifest('orders-db', '20261121T143000Z-a1b2c3'),
  state: 'completed',
  snapshots: [{ provider: 'ebs', snapshotId: 'snap-1', volumeId: 'vol-1', state: 'completed' }],
};
const refused = (name: string) => Object.assign(new Error('refused'), { name });

beforeEach(() => {
  ec2.reset();
  ec2.on(DescribeSnapshotsCommand).resolves({
    Snapshots: [
      {
        SnapshotId: 'snap-1',
        State: 'completed',
        Tags: [
          { Key: 'pgsnap:cluster', Value: 'orders-db' },
          { Key: 'pgsnap:backup-id', Value: '20261121T143000Z-a1b2c3' },
        ],
      },
    ],
  });
});

test('a locked snapshot is reported locked whatever the name of the delete error', async () => {
  ec2.on(DeleteSnapshotCommand).rejects(refused('InvalidParameterValue'));
  ec2
    .on(DescribeLockedSnapshotsCommand)
    .resolves({ Snapshots: [{ SnapshotId: 'snap-1', LockState: 'governance' }] });
  expect(await deleter(backup)).toEqual({ locked: ['snap-1'] });
  expect(ec2.commandCalls(DescribeLockedSnapshotsCommand)[0]!.args[0].input).toEqual({
    SnapshotIds: ['snap-1'],
  });
});

test('a failed delete of a snapshot that is not locked keeps its error, even one named like a lock', async () => {
  ec2.on(DeleteSnapshotCommand).rejects(refused('SnapshotLocked'));
  ec2
    .on(DescribeLockedSnapshotsCommand)
    .resolves({ Snapshots: [{ SnapshotId: 'snap-1', LockState: 'expired' }] });
  await expect(deleter(backup)).rejects.toMatchObject({ name: 'SnapshotLocked' });
});

test('a snapshot already gone (InvalidSnapshot.NotFound) is no error and asks nothing more', async () => {
  ec2.on(DeleteSnapshotCommand).rejects(refused('InvalidSnapshot.NotFound'));
  expect(await deleter(backup)).toEqual({ locked: [] });
  expect(ec2.commandCalls(DescribeLockedSnapshotsCommand)).toHaveLength(0);
});
