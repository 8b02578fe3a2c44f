/**
 * "The newest completed backup", as a restore of `latest`, the dashboard's
 * backup age and retention all count it: of backups started within one
 * second, the one that started last, whatever their random suffixes.
 */
import { beforeEach, describe, expect, test } from 'vitest';
import { backupFreshness } from '#domain/backup/freshness';
import type { Manifest } from '#domain/repository/manifest';
import { newestBackup } from '#domain/repository/newest';
import { Repository } from '#domain/repository/repository';
import { backupToRestore } from '#domain/restore/plan';
import { testCopy, testManifest } from '../support/manifests.ts';
import { MemoryStore } from '../support/memory-store.ts';

let repository: Repository;
beforeEach(() => {
  repository = new Repository(new MemoryStore(), 'orders-db');
});

const write = (backupId: string, startedAt: string, fields: Partial<Manifest> = {}) =>
  repository.writeManifest(testManifest({ backupId, state: 'completed', timings: { startedAt }, ...fields }));

describe('the newest completed backup', () => {
  test('of two started within one second, is the one that started last, for a restore of latest and the backup age', async () => {
    await write('20261121T100000Z-aaaaaa', '2026-11-21T10:00:00.000Z');
    await write('20261121T143000Z-ffffff', '2026-11-21T14:30:00.100Z');
    await write('20261121T143000Z-000000', '2026-11-21T14:30:00.900Z');
    expect((await backupToRestore(repository, 'latest')).backupId).toBe('20261121T143000Z-000000');
    const freshness = await backupFreshness(repository, {
      withDr: false,
      now: new Date('2026-11-21T15:30:00.900Z'),
    });
    expect(freshness.newest).toEqual({ backupId: '20261121T143000Z-000000', ageSeconds: 3600 });
  });

  test('skips newer failed backups, and in DR those whose copies are not all completed', async () => {
    await write('20261120T030000Z-000001', '2026-11-20T03:00:00.000Z', { copies: [testCopy('completed')] });
    await write('20261121T030000Z-000002', '2026-11-21T03:00:00.000Z', {
      copies: [testCopy('completed'), testCopy('pending')],
    });
    await write('20261122T030000Z-000003', '2026-11-22T03:00:00.000Z', { state: 'failed' });
    const freshness = await backupFreshness(repository, {
      withDr: true,
      now: new Date('2026-11-22T03:00:00.000Z'),
    });
    expect(freshness.newest).toEqual({ backupId: '20261121T030000Z-000002', ageSeconds: 86_400 });
    expect(freshness.newestInDr).toEqual({ backupId: '20261120T030000Z-000001', ageSeconds: 2 * 86_400 });
    // One walk for both: each of the three manifests read once.
    expect(freshness.read).toBe(3);
  });

  test('reads no more than its limit, and then has none', async () => {
    await write('20261120T030000Z-000001', '2026-11-20T03:00:00.000Z');
    for (let i = 2; i <= 6; i++) {
      await write(`2026112${i}T030000Z-00000${i}`, `2026-11-2${i}T03:00:00.000Z`, { state: 'failed' });
    }
    expect(await newestBackup(repository, (m) => m.state === 'completed', { limit: 3 })).toEqual({ read: 3 });
    const all = await newestBackup(repository, (m) => m.state === 'completed');
    expect(all.manifest?.backupId).toBe('20261120T030000Z-000001');
  });
});
