/**
 * `pgsnap backups list --all`: every cluster of one repository, with its newest
 * completed backup and its age, against an RPO when one is given, its DR
 * copies' lag, and its last successful drill, read from the repository alone.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { backupIdFrom } from '#domain/ids';
import type { Manifest } from '#domain/repository/manifest';
import { openRepository } from '#domain/repository/open';
import type { RestoreRecord } from '#domain/repository/restore-record';
import { testCopy, testManifest } from '../support/manifests.ts';
import { pgsnap } from '../support/pgsnap.ts';

let dir: string;
const now = Date.now();
const hoursAgo = (hours: number) => new Date(now - hours * 3_600_000);

/** A backup of `cluster` started `hours` ago, in `state`, with DR copies in `copies` states. */
function backup(cluster: string, hours: number, state: Manifest['state'], copies?: string[]): Manifest {
  const startedAt = hoursAgo(hours);
  return testManifest({
    cluster,
    backupId: backupIdFrom(startedAt, cluster),
    state,
    ...(state === 'completed' ? { stopLsn: '0/2000138' } : {}),
    timings: { startedAt: startedAt.toISOString() },
    updatedAt: startedAt.toISOString(),
    ...(copies ? { copies: copies.map((s) => testCopy(s)) } : {}),
  });
}

function drill(
  cluster: string,
  backupId: string,
  hours: number,
  state: RestoreRecord['state'],
): RestoreRecord {
  const at = hoursAgo(hours).toISOString();
  return {
    schemaVersion: 1,
    restoreId: `r-${backupIdFrom(hoursAgo(hours + 1), `drill ${cluster}`)}`,
    cluster,
    backupId,
    mode: 'drill',
    state,
    checks: { amcheck: 'all' },
    repository: `file://${dir}`,
    volumes: [],
    timings: { requestedAt: hoursAgo(hours + 1).toISOString(), finishedAt: at },
    updatedAt: at,
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pgsnap-fleet-'));
  const clusters: Record<string, { manifests: Manifest[]; drills?: (ids: string[]) => RestoreRecord[] }> = {
    // Copied to DR and caught up; drilled a day ago (an older drill failed since: the completed one counts).
    'orders-db': {
      manifests: [
        backup('orders-db', 26, 'completed', ['completed']),
        backup('orders-db', 2, 'completed', ['completed']),
      ],
      drills: (ids) => [
        drill('orders-db', ids[0]!, 24, 'completed'),
        drill('orders-db', ids[1]!, 1, 'failed'),
      ],
    },
    // Its newest backup's copy is still pending: DR is 24 hours behind. Never drilled, and 30 hours old.
    billing: {
      manifests: [
        backup('billing', 54, 'completed', ['completed']),
        backup('billing', 30, 'completed', ['pending']),
      ],
    },
    // Only a failed backup, and not copied.
    events: { manifests: [backup('events', 3, 'failed')] },
  };
  for (const [cluster, { manifests, drills }] of Object.entries(clusters)) {
    const repository = await openRepository(`file://${dir}`, cluster);
    await repository.pin(
      { systemIdentifier: '7311111111111111111', walSegmentSize: 16 * 1024 * 1024 },
      'test',
    );
    for (const manifest of manifests) await repository.writeManifest(manifest);
    for (const record of drills?.(manifests.map((m) => m.backupId)) ?? [])
      await repository.writeRestoreRecord(record);
    repository.close();
  }
  // A folder that is no cluster (no cluster.json) is not listed.
  mkdirSync(join(dir, 'scratch'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('pgsnap backups list --all', () => {
  test('shows every cluster with its newest backup, its age against the RPO, its DR lag and last drill', async () => {
    const list = await pgsnap(
      ['backups', 'list', '--all', '--rpo-hours', '24', '--repo', `file://${dir}`],
      {},
    );
    expect(list.stderr).toBe('');
    expect(list.code).toBe(0);
    const lines = list.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^CLUSTER +NEWEST COMPLETED +AGE +RPO +DR COPIES +LAST DRILL$/);
    expect(lines[1]).toMatch(/^billing +\S+ +(1d 6h|1d 5h) +OVER 24h +(1d|23h \d+m) behind +never$/);
    expect(lines[2]).toMatch(/^events +none +- +OVER 24h +not copied +never$/);
    expect(lines[3]).toMatch(/^orders-db +\S+ +(2h|1h 59m) +ok \(24h\) +caught up +(1d|23h \d+m) ago \(r-/);
    expect(lines).toHaveLength(6);
    expect(lines[5]).toBe(`3 cluster(s) in file://${dir}; 2 over the 24-hour RPO`);
  });

  test('without --rpo-hours says the repository holds no RPO; --json carries the same figures', async () => {
    const text = await pgsnap(['backups', 'list', '--all', '--repo', `file://${dir}`], {});
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/RPO: the repository does not hold it .* give --rpo-hours H/);

    const json = await pgsnap(['backups', 'list', '--all', '--json', '--repo', `file://${dir}`], {});
    expect(json.code).toBe(0);
    const { clusters } = JSON.parse(json.stdout) as {
      clusters: Array<{
        cluster: string;
        newest?: { backupId: string; ageSeconds: number };
        overRpo?: boolean;
        dr: { state: string; lagSeconds?: number };
        lastDrill?: { restoreId: string; days: number };
      }>;
    };
    expect(clusters.map((c) => c.cluster)).toEqual(['billing', 'events', 'orders-db']);
    const [billing, events, orders] = clusters;
    expect(billing!.newest!.backupId).toBe(backupIdFrom(hoursAgo(30), 'billing'));
    expect(billing!.dr).toEqual({ state: 'copied', newestInDr: expect.any(Object), lagSeconds: 24 * 3600 });
    expect(billing!.overRpo).toBeUndefined();
    expect(events!.newest).toBeUndefined();
    expect(events!.dr).toEqual({ state: 'not-copied' });
    expect(orders!.dr).toMatchObject({ state: 'copied', lagSeconds: 0 });
    expect(orders!.lastDrill!.days).toBeCloseTo(1, 1);
  });

  test('--all with --cluster is a usage error', async () => {
    const both = await pgsnap(
      ['backups', 'list', '--all', '--cluster', 'billing', '--repo', `file://${dir}`],
      {},
    );
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('give --all or --cluster, not both');
  });
});
