/**
 * The DR stack's recorder (functions/record-dr-backup.ts) against mocked EC2
 * and a real DR repository directory: the DR manifest is made of what the DR
 * account sees (its copies, their states and tags), and a proposal the
 * source could have forged records nothing.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeSnapshotsCommand, EC2Client, type Snapshot } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { proposeDrManifest } from '#domain/ebs/dr-copies';
import type { Manifest } from '#domain/repository/manifest';
import { openRepository } from '#domain/repository/open';
import { recordDrBackupHandler } from '../../functions/record-dr-backup.ts';
import { testManifest } from '../support/manifests.ts';

const ec2 = mockClient(EC2Client);
const record = recordDrBackupHandler(new EC2Client({ region: 'us-west-2' }));
/** The scheduled sweep, run at `now`. */
const sweep = (now: Date) =>
  recordDrBackupHandler(new EC2Client({ region: 'us-west-2' }), () => now)({ sweep: true });
const drAccount = '444455556666';
const backupId = '20261121T143000Z-a1b2c3';
const sources = ['snap-0000000000000000a', 'snap-0000000000000000b'];
const volume = {
  holds: [{ role: 'data' as const, path: '/var/lib/postgresql/15/main' }],
  mountPoint: '/var/lib/postgresql',
  fstype: 'xfs',
  volumeType: 'gp3',
  sizeGiB: 100,
  encrypted: true,
  kmsKeyId: 'arn:aws:kms:eu-west-1:111122223333:key/source',
  availabilityZone: 'eu-west-1a',
};

let dir: string;
let drUrl: string;

/** The copies the DR account sees: tagged as copy-snapshots tags them, in `states`. */
function copies(states: string[], cluster = 'orders-db'): Snapshot[] {
  return states.map((state, i) => ({
    SnapshotId: `snap-0d0000000000000${i}`,
    State: state as Snapshot['State'],
    ...(state === 'error' ? { StateMessage: 'copy failed (internal error)' } : {}),
    Tags: [
      { Key: 'pgsnap:cluster', Value: cluster },
      { Key: 'pgsnap:backup-id', Value: backupId },
      { Key: 'pgsnap:source-snapshot-id', Value: sources[i]! },
    ],
  }));
}

function seeCopies(snapshots: Snapshot[]): void {
  ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: snapshots });
}

/** What the source's copier leaves in DR: the pin, the artifact, the proposal. */
async function proposed(fields: Partial<Manifest> = {}): Promise<Manifest> {
  const dr = await openRepository(drUrl, 'orders-db');
  try {
    const base = testManifest({});
    await dr.pin({ systemIdentifier: base.systemIdentifier, walSegmentSize: base.walSegmentSize }, 'test');
    const label = await dr.putArtifact(
      backupId,
      'backup_label',
      Buffer.from('START WAL LOCATION: 0/2000028\n'),
    );
    const manifest = testManifest({
      backupId,
      state: 'completed',
      stopLsn: '0/2000138',
      stopWalFile: '000000010000000000000002',
      artifacts: [label],
      snapshots: sources.map((snapshotId, i) => ({
        provider: 'ebs',
        snapshotId,
        volumeId: `vol-000000000000000${i}`,
        state: 'completed',
        volume,
      })),
      ...fields,
    });
    await proposeDrManifest(dr, manifest);
    return manifest;
  } finally {
    dr.close();
  }
}

async function drManifest(): Promise<Manifest | undefined> {
  const dr = await openRepository(drUrl, 'orders-db');
  try {
    return await dr.readManifest(backupId);
  } finally {
    dr.close();
  }
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'pgsnap-dr-record-'));
  drUrl = `file://${dir}`;
  ec2.reset();
  // The DR catalog names the copied cluster's DR repository.
  const catalog = join(dir, '_catalog.json');
  writeFileSync(
    catalog,
    JSON.stringify({
      schemaVersion: 1,
      clusters: [{ name: 'orders-db', fastCheckpoint: false, maxBackupMinutes: 60, repository: drUrl }],
    }),
  );
  process.env.PGSNAP_CATALOG = catalog;
  process.env.PGSNAP_DR_ACCOUNT = drAccount;
  process.env.AWS_REGION = 'us-west-2';
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

const copyEnded = (snapshotId: string) => ({
  'detail-type': 'EBS Snapshot Notification',
  source: 'aws.ec2',
  detail: {
    event: 'copySnapshot',
    result: 'succeeded',
    snapshot_id: `arn:aws:ec2::us-west-2:snapshot/${snapshotId}`,
    source: `arn:aws:ec2::eu-west-1:snapshot/${sources[0]}`,
  },
});

describe('record-dr-backup', () => {
  test('when EBS ends the last copy, the DR manifest is completed, its snapshots the DR copies with the source volumes’ layout', async () => {
    await proposed();
    seeCopies(copies(['completed', 'completed']));
    const outcome = await record(copyEnded('snap-0d00000000000001'));
    expect(outcome).toEqual({
      recorded: true,
      backupId,
      state: 'completed',
      snapshotIds: ['snap-0d00000000000000', 'snap-0d00000000000001'],
    });
    const manifest = (await drManifest())!;
    expect(manifest.state).toBe('completed');
    expect(manifest.snapshots.map((s) => [s.snapshotId, s.state, s.volume?.availabilityZone])).toEqual([
      ['snap-0d00000000000000', 'completed', 'us-west-2'],
      ['snap-0d00000000000001', 'completed', 'us-west-2'],
    ]);
    // The copies are under the DR key: the source volume's key is not carried over.
    expect(manifest.snapshots[0]!.volume?.kmsKeyId).toBeUndefined();
    expect(manifest.copies?.map((c) => [c.account, c.sourceSnapshotId, c.state])).toEqual([
      [drAccount, sources[0], 'completed'],
      [drAccount, sources[1], 'completed'],
    ]);
  });

  test('snapshotting while a copy is pending or missing; failed, naming it, when one is in error', async () => {
    await proposed();
    seeCopies(copies(['completed', 'pending']));
    expect(await record({ cluster: 'orders-db', backupId })).toMatchObject({ state: 'snapshotting' });
    seeCopies(copies(['completed']));
    expect(await record({ cluster: 'orders-db', backupId })).toMatchObject({ state: 'snapshotting' });
    seeCopies(copies(['completed', 'error']));
    expect(await record({ cluster: 'orders-db', backupId })).toMatchObject({ state: 'failed' });
    expect((await drManifest())!.failure?.reason).toContain('snap-0d00000000000001');
  });

  test('a source cannot steer DR retention: the states are EC2’s, whatever the proposal says', async () => {
    // A proposal whose snapshots claim to have failed, and whose copies (forged in the proposal) are failed.
    const forged = await proposed({
      copies: sources.map((s) => ({
        account: drAccount,
        region: 'us-west-2',
        sourceSnapshotId: s,
        state: 'failed',
      })),
    });
    expect(forged.copies).toHaveLength(2);
    seeCopies(copies(['completed', 'completed']));
    await record({ cluster: 'orders-db', backupId });
    const manifest = (await drManifest())!;
    expect(manifest.state).toBe('completed');
    expect(manifest.copies?.map((c) => c.state)).toEqual(['completed', 'completed']);
  });

  test('records nothing from a proposal that is not a completed backup of the pinned cluster', async () => {
    await proposed({ state: 'failed' });
    seeCopies(copies(['completed', 'completed']));
    await expect(record({ cluster: 'orders-db', backupId })).rejects.toMatchObject({
      name: 'ManifestStateError',
    });
    expect(await drManifest()).toBeUndefined();
  });

  test('records nothing from a proposal of another system', async () => {
    await proposed({ systemIdentifier: '7399999999999999999' });
    seeCopies(copies(['completed', 'completed']));
    await expect(record({ cluster: 'orders-db', backupId })).rejects.toThrow(/7399999999999999999/);
    expect(await drManifest()).toBeUndefined();
  });

  test('records nothing when an artifact in DR is not what the proposal says', async () => {
    const manifest = await proposed();
    const label = manifest.artifacts[0]!;
    const dr = await openRepository(drUrl, 'orders-db');
    await dr.store.put(
      dr.backupKey(backupId, 'source-manifest.json'),
      Buffer.from(
        JSON.stringify({
          ...manifest,
          artifacts: [{ ...label, sha256: '0'.repeat(64) }],
        }),
      ),
    );
    dr.close();
    seeCopies(copies(['completed', 'completed']));
    await expect(record({ cluster: 'orders-db', backupId })).rejects.toMatchObject({
      name: 'CorruptObjectError',
    });
    expect(await drManifest()).toBeUndefined();
  });

  test('a copy of a snapshot the proposal does not name, or of another cluster, is not taken as the backup’s', async () => {
    await proposed();
    const [first, second] = copies(['completed', 'completed']);
    const stranger = {
      ...second!,
      Tags: second!.Tags!.map((t) =>
        t.Key === 'pgsnap:source-snapshot-id' ? { ...t, Value: 'snap-0000000000000000f' } : t,
      ),
    };
    const otherCluster = copies(['completed', 'completed'], 'billing-db')[1]!;
    seeCopies([first!, stranger, otherCluster]);
    expect(await record({ cluster: 'orders-db', backupId })).toMatchObject({
      state: 'snapshotting',
      snapshotIds: ['snap-0d00000000000000'],
    });
  });

  test('waits for the proposal: the copy’s event may come first, and the call fails to be retried', async () => {
    const dr = await openRepository(drUrl, 'orders-db');
    await dr.pin({ systemIdentifier: '7311111111111111111', walSegmentSize: 16 * 1024 * 1024 }, 'test');
    dr.close();
    seeCopies(copies(['completed', 'completed']));
    await expect(record(copyEnded('snap-0d00000000000000'))).rejects.toMatchObject({
      name: 'ManifestStateError',
    });
  });

  test('a snapshot pgsnap did not copy, or of a cluster this stack does not copy, is left alone', async () => {
    ec2
      .on(DescribeSnapshotsCommand)
      .resolves({ Snapshots: [{ SnapshotId: 'snap-0000000000000abcd', Tags: [] }] });
    expect(await record(copyEnded('snap-0000000000000abcd'))).toMatchObject({ recorded: false });
    seeCopies(copies(['completed'], 'payroll-db'));
    expect(await record(copyEnded('snap-0d00000000000000'))).toEqual({
      recorded: false,
      reason: 'payroll-db is not a cluster this DR stack copies',
    });
  });

  test('a sweep records again what a lost copy event left unrecorded, and only recent backups without a final manifest', async () => {
    await proposed();
    seeCopies(copies(['completed', 'completed']));
    // The copies ended but their events were lost: nothing is recorded until the sweep.
    expect(await drManifest()).toBeUndefined();
    const now = new Date('2026-11-22T10:00:00Z');
    const swept = await sweep(now);
    expect(swept).toEqual({
      swept: { 'orders-db': [expect.objectContaining({ backupId, recorded: true, state: 'completed' })] },
    });
    expect((await drManifest())?.state).toBe('completed');
    // Recorded and final: a second sweep reads it and leaves it.
    expect(await sweep(now)).toEqual({ swept: { 'orders-db': [] } });
    // Past the look-back, a backup is not read at all.
    rmSync(join(dir, 'orders-db', 'backups', backupId, 'manifest.json'));
    expect(await sweep(new Date('2026-11-24T15:00:00Z'))).toEqual({ swept: { 'orders-db': [] } });
  });

  test('a sweep reports a proposal it cannot record yet, and goes on', async () => {
    await proposed();
    seeCopies([]);
    const swept = await sweep(new Date('2026-11-21T15:00:00Z'));
    expect(swept).toEqual({
      swept: {
        'orders-db': [{ backupId, recorded: false, reason: `no DR copy of backup ${backupId} is there` }],
      },
    });
    expect(await drManifest()).toBeUndefined();
  });
});
