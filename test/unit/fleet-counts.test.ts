/**
 * report-backup-age's fleet counts: the clusters over their RPO, without a
 * backup, without a recent drill, and whose host published no archive health,
 * each one metric without a cluster dimension; a missing host is counted, a
 * cluster whose host published and whose backup is fresh is not.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CloudWatchClient,
  GetMetricDataCommand,
  type GetMetricDataCommandInput,
  PutMetricDataCommand,
} from '@aws-sdk/client-cloudwatch';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { type BackupFreshness, fleetCounts } from '#domain/backup/freshness';
import { hostMetrics } from '#domain/host-metrics';
import { openRepository } from '#domain/repository/open';
import { reportBackupAgeHandler } from '../../functions/report-backup-age.ts';
import { testManifest } from '../support/manifests.ts';

const hour = 3600;

describe('fleet counts', () => {
  const fresh: BackupFreshness = {
    cluster: 'orders-db',
    newest: { backupId: 'b1', ageSeconds: 2 * hour },
    newestDrill: { restoreId: 'r1', days: 3 },
    read: 1,
  };

  test('a cluster with a fresh backup, a recent drill and archive health is in no count', () => {
    const counts = fleetCounts(
      [{ cluster: 'orders-db', rpoSeconds: 26 * hour, drillDays: 8, watchArchiving: true }],
      [fresh],
      new Set(['orders-db']),
    );
    expect(Object.values(counts).flat()).toEqual([]);
  });

  test('a host that published no archive health is counted, whatever its backups say', () => {
    const counts = fleetCounts(
      [
        { cluster: 'orders-db', rpoSeconds: 26 * hour, watchArchiving: true },
        { cluster: 'ledger-db', rpoSeconds: 26 * hour, watchArchiving: true },
        { cluster: 'batch-db', rpoSeconds: 26 * hour, watchArchiving: false },
      ],
      [fresh, { ...fresh, cluster: 'ledger-db' }, { ...fresh, cluster: 'batch-db' }],
      new Set(['orders-db']),
    );
    expect(counts.ClustersWithoutArchiveHealth).toEqual(['ledger-db']);
    expect(counts.ClustersOverRpo).toEqual([]);
  });

  test('a cluster without a backup is over its RPO and without a backup; an old one only over its RPO', () => {
    const counts = fleetCounts(
      [
        { cluster: 'new-db', rpoSeconds: 26 * hour },
        { cluster: 'stale-db', rpoSeconds: 26 * hour },
        { cluster: 'orders-db', rpoSeconds: 26 * hour },
      ],
      [
        { cluster: 'new-db', read: 0 },
        { cluster: 'stale-db', newest: { backupId: 'b0', ageSeconds: 27 * hour }, read: 3 },
        fresh,
      ],
      new Set(),
    );
    expect(counts.ClustersWithoutBackup).toEqual(['new-db']);
    expect(counts.ClustersOverRpo).toEqual(['new-db', 'stale-db']);
  });

  test('drills: none, or the last older than drills.days, is counted', () => {
    const counts = fleetCounts(
      [
        { cluster: 'orders-db', drillDays: 8 },
        { cluster: 'never-db', drillDays: 8 },
        { cluster: 'late-db', drillDays: 8 },
        { cluster: 'undrilled-db' },
      ],
      [
        fresh,
        { ...fresh, cluster: 'never-db', newestDrill: undefined } as BackupFreshness,
        { ...fresh, cluster: 'late-db', newestDrill: { restoreId: 'r0', days: 9.5 } },
        { ...fresh, cluster: 'undrilled-db', newestDrill: undefined } as BackupFreshness,
      ],
      new Set(),
    );
    expect(counts.ClustersWithoutRecentDrill).toEqual(['never-db', 'late-db']);
  });
});

describe('report-backup-age', () => {
  const cloudwatch = mockClient(CloudWatchClient);
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'pgsnap-counts-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  beforeEach(() => cloudwatch.reset());

  /** The catalog report-backup-age reads its list from, in a file PGSNAP_CATALOG names. */
  function freshnessCatalog(
    clusters: Array<Record<string, unknown>>,
    defaults: Record<string, unknown> = {},
  ) {
    const file = join(dir, 'catalog.json');
    writeFileSync(
      file,
      JSON.stringify({ schemaVersion: 1, clusters: [], freshness: { defaults, clusters } }),
    );
    process.env.PGSNAP_CATALOG = file;
  }

  async function catalog(cluster: string, hoursAgo?: number) {
    mkdirSync(join(dir, cluster), { recursive: true });
    const repository = await openRepository(`file://${dir}/${cluster}`, cluster);
    if (hoursAgo !== undefined) {
      const at = new Date(Date.now() - hoursAgo * hour * 1000);
      await repository.writeManifest(
        testManifest({
          cluster,
          backupId: `${at
            .toISOString()
            .replace(/[-:]/g, '')
            .replace(/\.\d{3}/, '')}-a1b2c3`,
          state: 'completed',
          timings: { startedAt: at.toISOString() },
        }),
      );
    }
    repository.close();
  }

  test('publishes the counts without a cluster dimension, the silent host and the unbacked cluster counted', async () => {
    await catalog('orders-db', 2);
    await catalog('ledger-db', 30);
    await catalog('fresh-db');
    // Only orders-db's host published its archive lag in the last 15 minutes.
    cloudwatch.on(GetMetricDataCommand).callsFake((input: { MetricDataQueries: Array<{ Id: string }> }) => ({
      MetricDataResults: input.MetricDataQueries.map((q, i) => ({ Id: q.Id, Values: i === 0 ? [15] : [] })),
    }));
    cloudwatch.on(PutMetricDataCommand).resolves({});
    process.env.PGSNAP_METRICS_NAMESPACE = 'pgsnap';
    freshnessCatalog(
      ['orders-db', 'ledger-db', 'fresh-db'].map((name) => ({
        name,
        repository: `file://${dir}/${name}`,
        copiedToDr: false,
        rpoSeconds: 26 * hour,
        watchArchiving: true,
      })),
    );
    const outcome = await reportBackupAgeHandler(new CloudWatchClient({ region: 'eu-west-1' }))({});
    expect(outcome.counts).toMatchObject({
      ClustersOverRpo: ['ledger-db', 'fresh-db'],
      ClustersWithoutBackup: ['fresh-db'],
      ClustersWithoutArchiveHealth: ['ledger-db', 'fresh-db'],
    });

    const asked = cloudwatch.commandCalls(GetMetricDataCommand)[0]!.args[0].input;
    expect(asked.MetricDataQueries?.map((q) => q.MetricStat?.Metric?.Dimensions?.[0]?.Value)).toEqual([
      'orders-db',
      'ledger-db',
      'fresh-db',
    ]);
    expect(asked.MetricDataQueries?.[0]?.MetricStat?.Metric?.MetricName).toBe(hostMetrics.archiveLag);

    const put = cloudwatch.commandCalls(PutMetricDataCommand).map((c) => c.args[0].input);
    expect(put).toHaveLength(1);
    const data = put[0]!.MetricData ?? [];
    expect(data.every((d) => d.Dimensions === undefined)).toBe(true);
    expect(Object.fromEntries(data.map((d) => [d.MetricName, d.Value]))).toEqual({
      ClustersOverRpo: 2,
      ClustersWithoutBackup: 1,
      ClustersWithoutArchiveHealth: 2,
    });
  });

  test('no host to watch: no GetMetricData, and no archive-health count', async () => {
    await catalog('quiet-db', 1);
    cloudwatch.on(PutMetricDataCommand).resolves({});
    freshnessCatalog([
      { name: 'quiet-db', repository: `file://${dir}/quiet-db`, copiedToDr: false, rpoSeconds: 26 * hour },
    ]);
    await reportBackupAgeHandler(new CloudWatchClient({ region: 'eu-west-1' }))({});
    expect(cloudwatch.commandCalls(GetMetricDataCommand)).toHaveLength(0);
    const data = cloudwatch.commandCalls(PutMetricDataCommand)[0]!.args[0].input.MetricData ?? [];
    expect(data.map((d) => [d.MetricName, d.Value])).toEqual([
      ['ClustersOverRpo', 0],
      ['ClustersWithoutBackup', 0],
    ]);
  });

  test('clusters found by tags are counted: a tagged host never backed up is without a backup, one silent host without archive health', async () => {
    const ec2 = mockClient(EC2Client);
    const fleet = join(dir, 'fleet');
    mkdirSync(fleet, { recursive: true });
    const backedUp = await openRepository(`file://${fleet}`, 'inventory-db');
    const at = new Date(Date.now() - 2 * hour * 1000);
    await backedUp.writeManifest(
      testManifest({
        cluster: 'inventory-db',
        backupId: `${at
          .toISOString()
          .replace(/[-:]/g, '')
          .replace(/\.\d{3}/, '')}-a1b2c3`,
        state: 'completed',
        timings: { startedAt: at.toISOString() },
      }),
    );
    backedUp.close();
    await catalog('orders-db', 1);
    const host = (id: string, value: string) => ({
      InstanceId: id,
      Tags: [{ Key: 'pgsnap:cluster', Value: value }],
    });
    // Two pages: the whole fleet is one paginated call, never one per cluster.
    ec2
      .on(DescribeInstancesCommand)
      .resolvesOnce({
        Reservations: [{ Instances: [host('i-0000000000000001a', 'inventory-db')] }],
        NextToken: 'page-2',
      })
      .resolvesOnce({
        Reservations: [
          {
            Instances: [
              host('i-0000000000000002b', 'new-db'),
              // Listed in the catalog: counted once, by its own objectives.
              host('i-0000000000000003c', 'orders-db'),
              host('i-0000000000000004d', 'Not A Name'),
            ],
          },
        ],
      });
    // inventory-db's host published its archive lag; new-db's did not.
    cloudwatch.on(GetMetricDataCommand).callsFake((input: GetMetricDataCommandInput) => ({
      MetricDataResults: (input.MetricDataQueries ?? []).map((q) => ({
        Id: q.Id,
        Values: q.MetricStat?.Metric?.Dimensions?.[0]?.Value === 'inventory-db' ? [15] : [],
      })),
    }));
    cloudwatch.on(PutMetricDataCommand).resolves({});
    process.env.PGSNAP_METRICS_NAMESPACE = 'pgsnap';
    const file = join(dir, 'catalog.json');
    writeFileSync(
      file,
      JSON.stringify({
        schemaVersion: 1,
        clusters: [],
        discover: {
          tag: 'pgsnap:cluster',
          repository: `file://${fleet}`,
          defaults: { fastCheckpoint: false, maxBackupMinutes: 60 },
        },
        freshness: {
          defaults: {},
          discovered: { rpoSeconds: 26 * hour, watchArchiving: true },
          clusters: [{ name: 'orders-db', repository: `file://${dir}/orders-db`, copiedToDr: false }],
        },
      }),
    );
    process.env.PGSNAP_CATALOG = file;

    const outcome = await reportBackupAgeHandler(
      new CloudWatchClient({ region: 'eu-west-1' }),
      new EC2Client({ region: 'eu-west-1' }),
    )({});

    const described = ec2.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input);
    expect(described).toHaveLength(2);
    expect(described[0]!.Filters).toEqual([
      { Name: 'tag-key', Values: ['pgsnap:cluster'] },
      { Name: 'instance-state-name', Values: ['running'] },
    ]);
    expect(described[1]!.NextToken).toBe('page-2');
    expect(outcome.clusters.map((c) => c.cluster)).toEqual(['orders-db', 'inventory-db', 'new-db']);
    expect(outcome.counts).toMatchObject({
      ClustersOverRpo: ['new-db'],
      ClustersWithoutBackup: ['new-db'],
      ClustersWithoutArchiveHealth: ['new-db'],
    });
    const asked = cloudwatch.commandCalls(GetMetricDataCommand)[0]!.args[0].input;
    expect(asked.MetricDataQueries?.map((q) => q.MetricStat?.Metric?.Dimensions?.[0]?.Value)).toEqual([
      'inventory-db',
      'new-db',
    ]);
    const data = cloudwatch.commandCalls(PutMetricDataCommand)[0]!.args[0].input.MetricData ?? [];
    expect(Object.fromEntries(data.map((d) => [d.MetricName, d.Value]))).toEqual({
      ClustersOverRpo: 1,
      ClustersWithoutBackup: 1,
      ClustersWithoutArchiveHealth: 1,
    });
    ec2.restore();
  });

  test('a catalog without discovered objectives asks EC2 nothing', async () => {
    const ec2 = mockClient(EC2Client);
    await catalog('quiet-db', 1);
    cloudwatch.on(PutMetricDataCommand).resolves({});
    freshnessCatalog([
      { name: 'quiet-db', repository: `file://${dir}/quiet-db`, copiedToDr: false, rpoSeconds: 26 * hour },
    ]);
    await reportBackupAgeHandler(
      new CloudWatchClient({ region: 'eu-west-1' }),
      new EC2Client({ region: 'eu-west-1' }),
    )({});
    expect(ec2.commandCalls(DescribeInstancesCommand)).toHaveLength(0);
    ec2.restore();
  });
});
