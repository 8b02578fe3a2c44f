/**
 * CreateVolume only from the restored cluster's own snapshots: the snapshot
 * ids come from a manifest, so before any volume is made the Lambda asks EC2
 * for each snapshot's `pgsnap:cluster` tag and refuses any other.
 */
import { CreateVolumeCommand, DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, expect, it } from 'vitest';
import type { RestoreRecord } from '#domain/repository/restore-record';
import { createRestoreVolumes } from '#domain/restore/volumes';

const ec2 = mockClient(EC2Client);
beforeEach(() => ec2.reset());

const record = (snapshotIds: string[]): RestoreRecord => ({
  schemaVersion: 1,
  restoreId: 'r-20261121T143000Z-0a1b2c',
  cluster: 'orders-db',
  backupId: '20261121T120000Z-0a1b2c',
  mode: 'drill',
  state: 'requested',
  checks: { amcheck: 'all' },
  repository: 's3://bucket/pg',
  volumes: snapshotIds.map((snapshotId) => ({
    snapshotId,
    source: {
      holds: [{ role: 'data', path: '/var/lib/postgresql/15/main' }],
      mountPoint: '/var/lib/postgresql',
      fstype: 'xfs',
      sizeGiB: 10,
      volumeType: 'gp3',
      encrypted: true,
      availabilityZone: 'eu-west-1a',
    },
  })),
  timings: { requestedAt: '2026-11-21T14:30:00.000Z' },
  updatedAt: '2026-11-21T14:30:00.000Z',
});

const snapshots = {
  'snap-00000000000000001': 'orders-db',
  'snap-00000000000000002': 'billing-db',
} as Record<string, string | undefined>;

beforeEach(() => {
  ec2.on(DescribeSnapshotsCommand).callsFake((input: { SnapshotIds?: string[] }) => ({
    Snapshots: (input.SnapshotIds ?? []).map((id) => ({
      SnapshotId: id,
      Tags: snapshots[id] ? [{ Key: 'pgsnap:cluster', Value: snapshots[id] }] : [],
    })),
  }));
  ec2.on(CreateVolumeCommand).resolves({ VolumeId: 'vol-00000000000000009' });
});

it("makes volumes from the restored cluster's own snapshots", async () => {
  const made = await createRestoreVolumes(ec2 as never as EC2Client, record(['snap-00000000000000001']), {
    availabilityZone: 'eu-west-1a',
  });
  expect(made.map((v) => v.volumeId)).toEqual(['vol-00000000000000009']);
});

it("refuses another cluster's snapshot, or an untagged one, before any volume is made", async () => {
  for (const ids of [['snap-00000000000000001', 'snap-00000000000000002'], ['snap-00000000000000003']]) {
    ec2.resetHistory();
    await expect(
      createRestoreVolumes(ec2 as never as EC2Client, record(ids), { availabilityZone: 'eu-west-1a' }),
    ).rejects.toMatchObject({ name: 'SnapshotOfAnotherClusterError' });
    expect(ec2.commandCalls(CreateVolumeCommand)).toEqual([]);
  }
});
