/**
 * report-backup-age against moto's CloudWatch: the age of each cluster's
 * newest completed backup, and of its newest backup whose DR copies are all
 * completed, found; the fleet counts put without a cluster dimension and read
 * back as the alarms would, a host without archive health counted; a cluster
 * whose catalog cannot be read does not keep the others out of the counts,
 * and the run fails naming it.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CloudWatchClient,
  GetMetricStatisticsCommand,
  ListMetricsCommand,
  PutMetricDataCommand,
} from '@aws-sdk/client-cloudwatch';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Manifest } from '#domain/repository/manifest';
import { openRepository } from '#domain/repository/open';
import { reportBackupAgeHandler } from '../../functions/report-backup-age.ts';
import { testCopy, testManifest } from '../support/manifests.ts';
import { Moto, skipWithoutMoto } from '../support/moto.ts';

const region = 'eu-west-1';
const hour = 3_600_000;

describe.skipIf(skipWithoutMoto)('report-backup-age against moto CloudWatch', () => {
  let moto: Moto;
  let cloudwatch: CloudWatchClient;
  let dir: string;
  beforeAll(async () => {
    moto = await Moto.start();
    cloudwatch = new CloudWatchClient(moto.client(region));
    dir = mkdtempSync(join(tmpdir(), 'pgsnap-age-'));
  });
  afterAll(async () => {
    cloudwatch?.destroy();
    await moto?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function catalog(cluster: string, backups: Array<[hoursAgo: number, Partial<Manifest>]>) {
    mkdirSync(join(dir, cluster), { recursive: true });
    const repository = await openRepository(`file://${dir}/${cluster}`, cluster);
    for (const [hoursAgo, fields] of backups) {
      const at = new Date(Date.now() - hoursAgo * hour);
      const stamp = at
        .toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d{3}/, '');
      await repository.writeManifest(
        testManifest({
          cluster,
          backupId: `${stamp}-${String(hoursAgo).padStart(6, '0')}`,
          timings: { startedAt: at.toISOString() },
          ...fields,
        }),
      );
    }
    repository.close();
  }

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

  async function newest(metric: string): Promise<number | undefined> {
    const answer = await cloudwatch.send(
      new GetMetricStatisticsCommand({
        Namespace: 'pgsnap',
        MetricName: metric,
        StartTime: new Date(Date.now() - hour),
        EndTime: new Date(Date.now() + hour),
        Period: 60,
        Statistics: ['Maximum'],
      }),
    );
    return answer.Datapoints?.[0]?.Maximum;
  }

  test('finds the newest backups and counts the clusters over their objectives, a silent host among them', async () => {
    await catalog('orders-db', [
      [30, { state: 'completed', copies: [testCopy('completed')] }],
      [6, { state: 'completed', copies: [testCopy('pending')] }],
      [1, { state: 'failed' }],
    ]);
    await catalog('scratch-db', [[2, { state: 'started' }]]);
    process.env.PGSNAP_METRICS_NAMESPACE = 'pgsnap';
    // Both hosts should publish archive health; only orders-db's did.
    await cloudwatch.send(
      new PutMetricDataCommand({
        Namespace: 'pgsnap/hosts',
        MetricData: [
          {
            MetricName: 'ArchiveLagSeconds',
            Dimensions: [{ Name: 'Cluster', Value: 'orders-db' }],
            Value: 0,
          },
        ],
      }),
    );
    freshnessCatalog(
      [
        { name: 'orders-db', repository: `file://${dir}/orders-db`, copiedToDr: true },
        { name: 'scratch-db', repository: `file://${dir}/scratch-db`, copiedToDr: false },
      ],
      { rpoSeconds: 26 * 3600, watchArchiving: true },
    );
    const outcome = await reportBackupAgeHandler(cloudwatch)({});
    expect(
      outcome.clusters.map((c) => [
        c.cluster,
        c.newest?.backupId.slice(-6),
        c.newestInDr?.backupId.slice(-6),
      ]),
    ).toEqual([
      ['orders-db', '000006', '000030'],
      ['scratch-db', undefined, undefined],
    ]);
    const ages = Object.fromEntries(outcome.clusters.map((c) => [c.cluster, c]));
    // Hours, give or take the seconds the test took.
    expect(ages['orders-db']!.newest!.ageSeconds / 3600).toBeCloseTo(6, 1);
    expect(ages['orders-db']!.newestInDr!.ageSeconds / 3600).toBeCloseTo(30, 1);
    // scratch-db has no completed backup (over its RPO too), and its host published no archive health.
    expect(await newest('ClustersWithoutBackup')).toBe(1);
    expect(await newest('ClustersOverRpo')).toBe(1);
    expect(await newest('ClustersWithoutArchiveHealth')).toBe(1);
    expect(outcome.counts.ClustersWithoutArchiveHealth).toEqual(['scratch-db']);
    // No metric per cluster: nothing in pgsnap carries a dimension.
    const listed = await cloudwatch.send(new ListMetricsCommand({ Namespace: 'pgsnap' }));
    expect((listed.Metrics ?? []).filter((m) => (m.Dimensions ?? []).length > 0)).toEqual([]);
  });

  test('a cluster whose catalog cannot be read fails the run by name, after the others are reported', async () => {
    await catalog('billing-db', [[3, { state: 'completed' }]]);
    freshnessCatalog(
      [
        { name: 'ledger-db', repository: 'file:///nonexistent/pgsnap-age-test', copiedToDr: false },
        { name: 'billing-db', repository: `file://${dir}/billing-db`, copiedToDr: false },
      ],
      { rpoSeconds: 2 * 3600 },
    );
    await expect(reportBackupAgeHandler(cloudwatch)({})).rejects.toThrow(/the backup age of ledger-db \(/);
    // billing-db's 3-hour-old backup was still counted over its 2-hour RPO.
    expect(await newest('ClustersOverRpo')).toBe(1);
  });
});
