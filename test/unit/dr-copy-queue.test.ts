/**
 * The DR copy queue and time-based copies: the copy budget's handlers over
 * the store in memory (one unit per snapshot, the backup's place from its
 * snapshots' time, clusters not copied take nothing), and CopySnapshot asked
 * to complete within what is left of the DR RPO.
 */
import { CopySnapshotCommand, DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { KMSClient } from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, test } from 'vitest';
import { clustersBehindDrRpo } from '#domain/backup/freshness';
import { MemoryBudgetStore } from '#domain/budget/semaphore';
import { completionDurationMinutes, startDrCopies } from '#domain/ebs/dr-copies';
import type { DrTarget } from '#domain/ebs/dr-target';
import { BudgetExhaustedError } from '#domain/errors';
import { acquireCopyBudgetHandler } from '../../functions/acquire-copy-budget.ts';
import { releaseCopyBudgetHandler } from '../../functions/release-copy-budget.ts';
import { setLocalBudgetEnvironment } from '../../local/snapshot-budget.ts';

const target: DrTarget = {
  sourceAccount: '111122223333',
  sourceRegion: 'eu-west-1',
  account: '111122223333',
  region: 'us-west-2',
  kmsKeyArn: 'arn:aws:kms:us-west-2:111122223333:alias/pgsnap-prod-dr',
  clusters: { 'orders-db': { repository: 'file:///dr' }, 'users-db': { repository: 'file:///dr' } },
};
const snapshots = (n: number) =>
  Array.from({ length: n }, (_, i) => ({
    snapshotId: `snap-${String(i).padStart(17, '0')}`,
    volumeId: `vol-${String(i).padStart(17, '0')}`,
    state: 'completed',
  }));
const copyOf = (cluster: string, backupId: string, createdAt: string, n = 1) => ({
  cluster,
  backupId,
  snapshotSet: { snapshots: snapshots(n), createdAt },
});

describe('the DR copy budget', () => {
  let store: MemoryBudgetStore;
  beforeEach(() => {
    store = new MemoryBudgetStore();
    setLocalBudgetEnvironment(90, 3);
    process.env.PGSNAP_DR = JSON.stringify({
      ...target,
      clusters: { 'orders-db': target.clusters['orders-db'] },
    });
  });

  test('a backup takes one unit per snapshot it copies, and returns them', async () => {
    const acquire = acquireCopyBudgetHandler(() => store);
    const release = releaseCopyBudgetHandler(() => store);
    expect(await acquire(copyOf('orders-db', '20260105T030000Z-aaaaaa', '2026-01-05T03:00:05Z', 3))).toEqual({
      units: 3,
      held: 3,
      limit: 3,
    });
    expect(await release({ backupId: '20260105T030000Z-aaaaaa' })).toEqual({ held: 0, woken: 0, lost: 0 });
  });

  test('a cluster not copied to DR takes nothing', async () => {
    const acquire = acquireCopyBudgetHandler(() => store);
    expect(await acquire(copyOf('users-db', '20260105T030000Z-bbbbbb', '2026-01-05T03:00:05Z', 3))).toEqual({
      units: 0,
      held: 0,
      limit: 3,
    });
    expect(store.records.size).toBe(0);
  });

  test('the backup whose snapshots are older copies first, whichever asks first once a share is free', async () => {
    const acquire = acquireCopyBudgetHandler(() => store);
    const release = releaseCopyBudgetHandler(() => store);
    await acquire(copyOf('orders-db', '20260105T010000Z-000001', '2026-01-05T01:00:05Z', 3));
    const older = copyOf('orders-db', '20260105T020000Z-000002', '2026-01-05T02:00:05Z', 2);
    const younger = copyOf('orders-db', '20260105T030000Z-000003', '2026-01-05T03:00:05Z', 1);
    await expect(acquire(younger)).rejects.toThrow(BudgetExhaustedError);
    await expect(acquire(older)).rejects.toThrow(BudgetExhaustedError);
    await release({ backupId: '20260105T010000Z-000001' });
    // The younger one asked first, and asks first again: it fits beside the older one's two units.
    await acquire(younger);
    await acquire(older);
    expect((await store.read('copies#local'))!.record.held).toBe(3);
  });
});

describe('time-based DR copies', () => {
  const backupTime = new Date('2026-01-05T03:00:00Z');
  const minutesLater = (minutes: number) => new Date(backupTime.getTime() + minutes * 60_000);

  test('the completion duration is what is left of the DR RPO, in 15-minute steps, between 15 minutes and 48 hours', () => {
    expect(completionDurationMinutes(120, backupTime, minutesLater(10))).toBe(105);
    expect(completionDurationMinutes(120, backupTime, minutesLater(16))).toBe(90);
    expect(completionDurationMinutes(120, backupTime, minutesLater(110))).toBe(15);
    expect(completionDurationMinutes(120, backupTime, minutesLater(300))).toBe(15);
    expect(completionDurationMinutes(10_080, backupTime, minutesLater(0))).toBe(2_880);
  });

  test('with a DR RPO, CopySnapshot is asked for a time-based copy; without one, a standard copy', async () => {
    const ec2 = mockClient(EC2Client);
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(CopySnapshotCommand).resolves({ SnapshotId: 'snap-dr00000000000001' });
    const client = new EC2Client({ region: 'us-west-2' });
    const source = { ec2: client, kms: new KMSClient({ region: 'eu-west-1' }) };
    const request = {
      cluster: 'orders-db',
      backupId: '20260105T030000Z-aaaaaa',
      snapshots: snapshots(1),
      backupTime: backupTime.toISOString(),
      now: minutesLater(40),
    };
    await startDrCopies({ source, drEc2: client }, { ...request, target: { ...target, rpoMinutes: 120 } });
    await startDrCopies({ source, drEc2: client }, { ...request, target });
    const asked = ec2.commandCalls(CopySnapshotCommand).map((c) => c.args[0].input.CompletionDurationMinutes);
    expect(asked).toEqual([75, undefined]);
    ec2.restore();
  });
});

describe('copy lag against the DR RPO', () => {
  test('a copied cluster is behind when its newest backup in DR, or with none its newest backup, is older than its DR RPO', () => {
    const found = [
      {
        cluster: 'fresh',
        newest: { backupId: 'a', ageSeconds: 600 },
        newestInDr: { backupId: 'a', ageSeconds: 600 },
        read: 1,
      },
      {
        cluster: 'lagging',
        newest: { backupId: 'b', ageSeconds: 600 },
        newestInDr: { backupId: 'c', ageSeconds: 9_000 },
        read: 2,
      },
      { cluster: 'never-copied', newest: { backupId: 'd', ageSeconds: 9_000 }, read: 1 },
      { cluster: 'just-started', newest: { backupId: 'e', ageSeconds: 60 }, read: 1 },
      { cluster: 'not-copied', newest: { backupId: 'f', ageSeconds: 99_000 }, read: 1 },
    ];
    const rpo = { fresh: 7_200, lagging: 7_200, 'never-copied': 7_200, 'just-started': 7_200 };
    expect(clustersBehindDrRpo(found, rpo)).toEqual(['lagging', 'never-copied']);
  });
});
