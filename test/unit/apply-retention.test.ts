/**
 * The retention Lambda: the repository's policy with the Lambda's own EC2
 * (the source stack's over the source repository, the DR stack's, in the DR
 * account, over the DR repository); locked snapshots reported, their backups
 * kept; forged manifests believed only as far as the snapshots' tags agree.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DeleteSnapshotCommand,
  DescribeLockedSnapshotsCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  type Snapshot,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { proposedManifestName } from '#domain/ebs/dr-copies';
import type { RetentionSummary } from '#domain/ebs/retention';
import type { Manifest } from '#domain/repository/manifest';
import { openRepository } from '#domain/repository/open';
import { handler as applyRetention } from '../../functions/apply-retention.ts';
import { setLocalCatalog } from '../../local/state-machine.ts';
import { testManifest } from '../support/manifests.ts';

const ec2 = mockClient(EC2Client);
let dir: string;

const identity = { systemIdentifier: '7311111111111111111', walSegmentSize: 16 * 1024 * 1024 };

/** The snapshots EC2 knows, with the tags CreateSnapshots and CopySnapshot put on them. */
let snapshots: Snapshot[];

function tagged(snapshotId: string, cluster: string, backupId: string): Snapshot {
  return {
    SnapshotId: snapshotId,
    State: 'completed',
    Tags: [
      { Key: 'pgsnap:cluster', Value: cluster },
      { Key: 'pgsnap:backup-id', Value: backupId },
    ],
  };
}

function manifest(backupId: string, day: number, snapshotId: string): Manifest {
  snapshots.push(tagged(snapshotId, 'orders-db', backupId));
  const at = `2026-11-${String(day).padStart(2, '0')}T03:00:00.000Z`;
  return testManifest({
    backupId,
    state: 'completed',
    ...identity,
    snapshots: [{ provider: 'ebs', snapshotId, volumeId: 'vol-1', state: 'completed' }],
    timings: { startedAt: at, completedAt: at },
    updatedAt: at,
  });
}

async function seed(url: string, prefix: string): Promise<void> {
  const repository = await openRepository(url, 'orders-db');
  await repository.pin(identity, 'test');
  for (const m of [
    manifest('20261101T030000Z-000001', 1, `${prefix}-old`),
    manifest('20261102T030000Z-000002', 2, `${prefix}-locked`),
    manifest('20261103T030000Z-000003', 3, `${prefix}-new`),
  ]) {
    // Its backup_label, which retention reads the start from (the manifest alone could be forged).
    const label = await repository.putArtifact(
      m.backupId,
      'backup_label',
      Buffer.from(
        `START WAL LOCATION: ${m.startLsn} (file ${m.startWalFile})\nCHECKPOINT LOCATION: 0/2000060\n`,
      ),
    );
    await repository.writeManifest({ ...m, artifacts: [label] });
    // In DR, the source's proposal sits beside the manifest (DR's recorder wrote the manifest from it).
    await repository.store.put(repository.backupKey(m.backupId, proposedManifestName), Buffer.from('{}'));
  }
  repository.close();
}

async function backupIds(url: string): Promise<string[]> {
  const repository = await openRepository(url, 'orders-db');
  try {
    return await repository.listBackupIds();
  } finally {
    repository.close();
  }
}

beforeEach(async () => {
  snapshots = [];
  dir = mkdtempSync(join(tmpdir(), 'pgsnap-retention-'));
  mkdirSync(join(dir, 'source'));
  await seed(`file://${dir}/source`, 'snap-src');
  ec2.reset();
  process.env.AWS_ACCESS_KEY_ID = 'AKIASOURCE';
  process.env.AWS_SECRET_ACCESS_KEY = 'secret';
  process.env.AWS_REGION = 'eu-west-1';
  ec2.on(DescribeSnapshotsCommand).callsFake((input: { SnapshotIds?: string[] }) => ({
    Snapshots: snapshots.filter((s) => input.SnapshotIds?.includes(s.SnapshotId!)),
  }));
  ec2.on(DeleteSnapshotCommand).callsFake((input: { SnapshotId: string }) => {
    if (input.SnapshotId.endsWith('-locked')) {
      throw Object.assign(new Error(`${input.SnapshotId} is locked`), { name: 'SnapshotLocked' });
    }
    return {};
  });
  ec2.on(DescribeLockedSnapshotsCommand).callsFake((input: { SnapshotIds: string[] }) => ({
    Snapshots: input.SnapshotIds.filter((id) => id.endsWith('-locked')).map((SnapshotId) => ({
      SnapshotId,
      LockState: 'governance',
    })),
  }));
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The stack's catalog, with orders-db's policy on this side (none: it keeps everything). */
function retain(retention: Record<string, unknown> | undefined): void {
  setLocalCatalog({
    clusters: [
      {
        name: 'orders-db',
        fastCheckpoint: false,
        maxBackupMinutes: 60,
        repository: `file://${dir}/source`,
        ...(retention ? { retention: { ...retention, schedule: 'rate(1 day)' } } : {}),
      },
    ],
  });
}

describe('apply-retention', () => {
  test('applies the policy with the Lambda’s own EC2 and credentials, deleting whole backups, and assumes no role', async () => {
    retain({ keepLast: 1 });
    const outcome = await applyRetention({ cluster: 'orders-db', repository: `file://${dir}/source` });
    const deletes = await Promise.all(
      ec2.commandCalls(DeleteSnapshotCommand).map(async (call) => {
        const client = call.thisValue as EC2Client;
        return [
          call.args[0].input.SnapshotId,
          await client.config.region(),
          (await client.config.credentials()).accessKeyId,
        ];
      }),
    );
    expect(deletes).toEqual([
      ['snap-src-old', 'eu-west-1', 'AKIASOURCE'],
      ['snap-src-locked', 'eu-west-1', 'AKIASOURCE'],
    ]);
    expect(outcome).toMatchObject({
      removed: ['20261101T030000Z-000001'],
      lockedSnapshots: [{ backupId: '20261102T030000Z-000002', snapshotIds: ['snap-src-locked'] }],
    });
    expect(await backupIds(`file://${dir}/source`)).toEqual([
      '20261102T030000Z-000002',
      '20261103T030000Z-000003',
    ]);
    // Nothing of the removed backup is left behind, its proposal included.
    expect(existsSync(join(dir, 'source', 'orders-db', 'backups', '20261101T030000Z-000001'))).toBe(false);
  });

  test('a completed backup whose backup_label is not one PostgreSQL wrote stays, unverified, and is not counted', async () => {
    retain({ keepLast: 1 });
    const repository = await openRepository(`file://${dir}/source`, 'orders-db');
    const newest = (await repository.readManifest('20261103T030000Z-000003'))!;
    // A label naming the start file but without the checkpoint line every real label carries.
    const label = await repository.putArtifact(
      '20261104T030000Z-000004',
      'backup_label',
      Buffer.from(`START WAL LOCATION: ${newest.startLsn} (file ${newest.startWalFile})\n`),
    );
    snapshots.push(tagged('snap-src-newer', 'orders-db', '20261104T030000Z-000004'));
    await repository.writeManifest({
      ...newest,
      backupId: '20261104T030000Z-000004',
      snapshots: [{ provider: 'ebs', snapshotId: 'snap-src-newer', volumeId: 'vol-1', state: 'completed' }],
      timings: { startedAt: '2026-11-04T03:00:00.000Z', completedAt: '2026-11-04T03:00:00.000Z' },
      artifacts: [label],
    });
    repository.close();
    const outcome = (await applyRetention({
      cluster: 'orders-db',
      repository: `file://${dir}/source`,
    })) as RetentionSummary;
    expect(outcome.unverified).toEqual([
      {
        backupId: '20261104T030000Z-000004',
        reason: expect.stringMatching(/backup_label cannot be read.*CHECKPOINT LOCATION/),
      },
    ]);
    // keepLast 1 kept the newest backup it could believe, the unverified one stays, and so does the locked one.
    expect(await backupIds(`file://${dir}/source`)).toEqual([
      '20261102T030000Z-000002',
      '20261103T030000Z-000003',
      '20261104T030000Z-000004',
    ]);
  });

  test('refuses a catalog whose entry still carries a DR policy: DR retention is the DR stack’s own', async () => {
    retain({ keepLast: 1, dr: { keepLast: 2 } });
    await expect(
      applyRetention({ cluster: 'orders-db', repository: `file://${dir}/source` }),
    ).rejects.toThrow(/retention of orders-db in the cluster catalog is not valid.*dr/);
    expect(ec2.commandCalls(DeleteSnapshotCommand)).toHaveLength(0);
  });

  test('a failed manifest that names another cluster’s snapshots deletes nothing of theirs, and is reported', async () => {
    retain({ keepLast: 1 });
    // billing-db's real snapshot, tagged by CreateSnapshots for billing-db's backup.
    snapshots.push(tagged('snap-billing', 'billing-db', '20261101T030000Z-b00001'));
    // What a compromised host of orders-db writes: a failed, old backup "of" that snapshot.
    const repository = await openRepository(`file://${dir}/source`, 'orders-db');
    await repository.writeManifest(
      testManifest({
        backupId: '20261101T020000Z-0f0f0f',
        state: 'failed',
        ...identity,
        snapshots: [{ provider: 'ebs', snapshotId: 'snap-billing', volumeId: 'vol-9', state: 'completed' }],
        timings: { startedAt: '2026-11-01T02:00:00.000Z' },
      }),
    );
    repository.close();
    const outcome = await applyRetention({ cluster: 'orders-db', repository: `file://${dir}/source` });
    const deleted = ec2.commandCalls(DeleteSnapshotCommand).map((c) => c.args[0].input.SnapshotId);
    expect(deleted).not.toContain('snap-billing');
    expect((outcome as RetentionSummary).unverified).toEqual([
      {
        backupId: '20261101T020000Z-0f0f0f',
        reason: expect.stringContaining('snap-billing is tagged pgsnap:cluster=billing-db'),
      },
    ]);
    expect(await backupIds(`file://${dir}/source`)).toContain('20261101T020000Z-0f0f0f');
  });

  test('forged completed manifests whose snapshots are not theirs push no real backup out of keepLast', async () => {
    retain({ keepLast: 2 });
    const repository = await openRepository(`file://${dir}/source`, 'orders-db');
    for (const [backupId, day] of [
      ['20261110T030000Z-ffff01', 10],
      ['20261111T030000Z-ffff02', 11],
    ] as const) {
      const at = `2026-11-${day}T03:00:00.000Z`;
      await repository.writeManifest(
        testManifest({
          backupId,
          state: 'completed',
          ...identity,
          startWalFile: '0000000100000000000000FF',
          // Real snapshots of the newest real backup, named again: their tags say which backup they are.
          snapshots: [{ provider: 'ebs', snapshotId: 'snap-src-new', volumeId: 'vol-1', state: 'completed' }],
          timings: { startedAt: at, completedAt: at },
          updatedAt: at,
        }),
      );
    }
    repository.close();
    const outcome = await applyRetention({ cluster: 'orders-db', repository: `file://${dir}/source` });
    expect((outcome as RetentionSummary).removed).toEqual(['20261101T030000Z-000001']);
    expect((outcome as RetentionSummary).kept).toEqual(
      expect.arrayContaining(['20261102T030000Z-000002', '20261103T030000Z-000003']),
    );
    expect((outcome as RetentionSummary).unverified.map((u) => u.backupId)).toEqual([
      '20261110T030000Z-ffff01',
      '20261111T030000Z-ffff02',
    ]);
    expect(ec2.commandCalls(DeleteSnapshotCommand).map((c) => c.args[0].input.SnapshotId)).toEqual([
      'snap-src-old',
    ]);
  });

  test('a cluster found by tags has the discovery block’s policy', async () => {
    setLocalCatalog({
      clusters: [],
      discover: {
        tag: 'pgsnap:cluster',
        repository: `file://${dir}/source`,
        defaults: {
          fastCheckpoint: false,
          maxBackupMinutes: 60,
          retention: { keepLast: 1, schedule: 'rate(1 day)' },
        },
      },
    });
    const outcome = await applyRetention({ cluster: 'orders-db', repository: `file://${dir}/source` });
    expect((outcome as RetentionSummary).removed).toEqual(['20261101T030000Z-000001']);
    expect(await backupIds(`file://${dir}/source`)).toEqual([
      '20261102T030000Z-000002',
      '20261103T030000Z-000003',
    ]);
  });

  test('a cluster without a retention policy keeps everything and touches nothing', async () => {
    retain(undefined);
    expect(await applyRetention({ cluster: 'orders-db', repository: `file://${dir}/source` })).toEqual({});
    expect(ec2.commandCalls(DeleteSnapshotCommand)).toHaveLength(0);
    expect(await backupIds(`file://${dir}/source`)).toHaveLength(3);
  });
});
