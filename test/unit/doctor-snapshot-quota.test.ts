/**
 * `pgsnap doctor --fleet`: the snapshots every cluster of a repository keeps,
 * per Region, against EBS's 100,000, by the projection `cdk synth` makes.
 */
import { describe, expect, test } from 'vitest';
import { projectSnapshots, quotaFindings } from '#domain/backup/snapshot-projection';
import { backupIdFrom } from '#domain/ids';
import type { Manifest } from '#domain/repository/manifest';
import { Repository } from '#domain/repository/repository';
import { cadenceHours, snapshotQuotaCheck } from '../../agent/doctor/fleet-checks.ts';
import { testCopy, testManifest } from '../support/manifests.ts';
import { MemoryStore } from '../support/memory-store.ts';

const volume = (id: string) => ({
  holds: [{ role: 'data' as const, path: '/srv/pgdata/main' }],
  mountPoint: `/srv/${id}`,
  fstype: 'xfs',
  sizeGiB: 100,
  volumeType: 'gp3',
  encrypted: true,
  availabilityZone: 'eu-west-1a',
});

/** `clusters` clusters of two EBS volumes, each with `backups` hourly backups, copied to eu-central-1. */
async function fleet(clusters: number, backups: number): Promise<MemoryStore> {
  const store = new MemoryStore();
  for (let c = 0; c < clusters; c++) {
    const repository = new Repository(store, `db-${c}`);
    await repository.pin(
      { systemIdentifier: '7311111111111111111', walSegmentSize: 16 * 1024 * 1024 },
      'test',
    );
    for (let b = 0; b < backups; b++) {
      const startedAt = new Date(Date.UTC(2026, 11, 1, b));
      const manifest: Manifest = testManifest({
        cluster: `db-${c}`,
        backupId: backupIdFrom(startedAt, `db-${c}`),
        state: 'completed',
        timings: { startedAt: startedAt.toISOString() },
        snapshots: ['vol-a', 'vol-b'].map((v) => ({
          provider: 'ebs',
          snapshotId: `snap-${v}-${b}`,
          volumeId: v,
          state: 'completed',
          volume: volume(v),
        })),
        copies: [testCopy('completed')],
      });
      await repository.writeManifest(manifest);
    }
  }
  return store;
}

describe('the snapshot projection doctor and cdk synth share', () => {
  test('a Region over 80 % of the quota is a warning, over the quota a failure', () => {
    const keeping = (n: number, keepLast: number) =>
      Array.from({ length: n }, (_, i) => ({
        cluster: `db-${i}`,
        volumes: 2,
        everyHours: 1,
        keeps: [{ region: 'eu-west-1', policy: { keepLast } }],
      }));
    // 2 volumes × (keepLast + the newest) per cluster.
    expect(quotaFindings(projectSnapshots(keeping(100, 349)))).toEqual([]);
    expect(quotaFindings(projectSnapshots(keeping(100, 449)))).toEqual([
      expect.objectContaining({ region: 'eu-west-1', level: 'near', snapshots: 90_000 }),
    ]);
    expect(quotaFindings(projectSnapshots(keeping(100, 549)))).toEqual([
      expect.objectContaining({ level: 'over', snapshots: 110_000 }),
    ]);
  });

  test('the cadence is the median spacing of the latest backups', () => {
    const ids = [0, 1, 2, 3, 5].map((h) => backupIdFrom(new Date(Date.UTC(2026, 11, 1, h)), 'x'));
    expect(cadenceHours(ids)).toBe(1);
    expect(cadenceHours(ids.slice(0, 1))).toBe(24);
  });
});

describe('pgsnap doctor --fleet', () => {
  test('counts the snapshots the catalogs hold now, per Region, source and DR, when no retention is given', async () => {
    const store = await fleet(3, 4);
    const [result] = await snapshotQuotaCheck(store, undefined);
    expect(result).toMatchObject({ check: 'snapshots.quota', status: 'ok' });
    // 3 clusters × 2 volumes × 4 backups, in the volumes' Region and in the copies' Region.
    expect(result!.message).toContain('3 cluster(s) in memory://test, 3 with EBS snapshots');
    expect(result!.message).toContain('24 in eu-west-1, 24 in us-west-2 (DR)');
    expect(result!.message).toContain('give --keep-last, --keep-days or --thin');
  });

  test('projects a retention given: ten years of hourly backups break the quota; thinned they fit', async () => {
    const store = await fleet(3, 4);
    const over = await snapshotQuotaCheck(store, { keepDays: 3_650 });
    expect(over.map((r) => r.status)).toEqual(['fail', 'fail']);
    expect(over[0]!.message).toMatch(/keeps up to \d+ snapshots in eu-west-1; EBS allows 100000 per Region/);
    const thinned = await snapshotQuotaCheck(store, { thin: { hours: 24, days: 7, weeks: 4, months: 12 } });
    expect(thinned).toEqual([expect.objectContaining({ status: 'ok' })]);
    // The newest, and (24+1) + (7+1) + (4+1) + (12+1): 52 backups of 2 volumes, 3 clusters.
    expect(thinned[0]!.message).toContain('312 in eu-west-1');
  });
});
