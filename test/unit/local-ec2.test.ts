/**
 * The local EC2 that `pgsnap demo` gives the backup's Lambdas: driven through
 * the same domain code as in AWS (createSnapshotSet, checkSnapshotSet,
 * deleteSnapshotSet), it must take real provider snapshots of exactly the
 * requested volumes, find them again by the backup's tag, and delete them.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { checkSnapshotSet } from '#domain/ebs/check-snapshot-set';
import { createSnapshotSet } from '#domain/ebs/create-snapshot-set';
import { deleteSnapshotSet } from '#domain/ebs/delete-snapshots';
import { visibilityGraceMs } from '#domain/ebs/snapshots';
import { CopyProvider } from '../../agent/providers/copy.ts';
import { LocalEc2 } from '../../local/local-ec2.ts';

const scratch = mkdtempSync(join(tmpdir(), 'pgsnap-local-ec2-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function directory(name: string, content: string): string {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'file'), content);
  return dir;
}

const instanceId = 'i-0000000000000000a';
const data = directory('data', 'the data directory');
const wal = directory('wal', 'the WAL');
const other = directory('other', 'not part of the cluster');
const ec2 = new LocalEc2(new CopyProvider(join(scratch, 'snapshots')), instanceId, [
  { volumeId: 'vol-0000000000000000f', device: '/dev/xvda' },
  { volumeId: 'vol-00000000000000001', device: '/dev/sdf', holds: { role: 'data', path: data } },
  { volumeId: 'vol-00000000000000002', device: '/dev/sdg', holds: { role: 'wal', path: wal } },
  { volumeId: 'vol-00000000000000003', device: '/dev/sdh', holds: { role: 'data', path: other } },
]);
const settings = { firstPollSeconds: 1, maxPollSeconds: 5, snapshotHours: 1 };

test('snapshots exactly the requested volumes, is found again by tag, completes, and deletes what it took', async () => {
  const request = {
    cluster: 'demo',
    backupId: '20261121T120000Z-abcdef',
    instanceId,
    volumeIds: ['vol-00000000000000001', 'vol-00000000000000002'],
  };
  const set = await createSnapshotSet(ec2.client, request);
  expect(set.snapshots.map((s) => s.volumeId).sort()).toEqual(request.volumeIds);
  const taken = ec2.takenFor(request.backupId);
  expect(taken.map((t) => t.source).sort()).toEqual([data, wal].sort());
  for (const snapshot of taken) {
    expect(readFileSync(join(snapshot.snapshot, 'file'), 'utf8')).toBe(
      readFileSync(join(snapshot.source, 'file'), 'utf8'),
    );
  }
  // A repeated call (a retried step) returns the set already taken rather than a second one.
  const again = await createSnapshotSet(ec2.client, request);
  expect(again.snapshots.map((s) => s.snapshotId).sort()).toEqual(
    set.snapshots.map((s) => s.snapshotId).sort(),
  );
  expect(ec2.takenFor(request.backupId)).toHaveLength(2);

  const progress = await checkSnapshotSet(ec2.client, { set, attempt: 0, settings });
  expect(progress).toMatchObject({ completed: true, progress: '100%' });

  const { deleted } = await deleteSnapshotSet(ec2.client, { backupId: request.backupId });
  expect(deleted.sort()).toEqual(set.snapshots.map((s) => s.snapshotId).sort());
  for (const snapshot of taken) expect(existsSync(snapshot.snapshot)).toBe(false);
  // Missing right after it was taken may be EC2's eventual consistency: pending, until the grace is over.
  expect(await checkSnapshotSet(ec2.client, { set, attempt: 1, settings })).toMatchObject({
    completed: false,
  });
  const later = new Date(Date.parse(set.createdAt) + visibilityGraceMs + 1_000);
  await expect(checkSnapshotSet(ec2.client, { set, attempt: 2, settings, now: later })).rejects.toThrow(
    /no longer exists/,
  );
});

test('refuses a volume that is not attached, and an instance that is not this host', async () => {
  const backupId = '20261121T120000Z-bbbbbb';
  const request = { cluster: 'demo', backupId, instanceId, volumeIds: ['vol-00000000000000009'] };
  await expect(createSnapshotSet(ec2.client, request)).rejects.toThrow(
    /vol-00000000000000009 of cluster demo is not attached/,
  );
  // An instance the local account does not have is refused as EC2 refuses it, by DescribeInstances.
  const unknown = { ...request, instanceId: 'i-0000000000000000b', volumeIds: ['vol-00000000000000001'] };
  await expect(createSnapshotSet(ec2.client, unknown)).rejects.toMatchObject({
    name: 'InvalidInstanceID.NotFound',
    message: expect.stringContaining('i-0000000000000000b'),
  });
  // Another instance of the account (a restore's target) has none of this host's volumes attached.
  ec2.addInstance('i-0000000000000000c');
  const other = { ...unknown, instanceId: 'i-0000000000000000c' };
  await expect(createSnapshotSet(ec2.client, other)).rejects.toThrow(
    /vol-00000000000000001 of cluster demo is not attached to i-0000000000000000c/,
  );
  expect(ec2.takenFor(backupId)).toEqual([]);
});
