/**
 * The agent service watching WAL archiving, against real PostgreSQL 15 and
 * moto's CloudWatch: a failing archive_command shows as archive lag and ready
 * files, in CloudWatch and on the OpenMetrics endpoint (read with a
 * Prometheus text-format parser), and both fall back once archiving works.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { CloudWatchClient, GetMetricDataCommand, ListMetricsCommand } from '@aws-sdk/client-cloudwatch';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { fleetHostMetrics, hostMetrics } from '#domain/host-metrics';
import { archiveEverything, archiverStats, switchSegments } from '../support/archiving.ts';
import { archivingGate } from '../support/backup-mode.ts';
import { freePort } from '../support/cluster.ts';
import { clusterForTest } from '../support/fixtures.ts';
import { Moto, skipWithoutMoto } from '../support/moto.ts';
import { pgsnap, pgsnapBin } from '../support/pgsnap.ts';
import { spawnWatched } from '../support/processes.ts';
import { waitFor } from '../support/wait.ts';

describe.skipIf(skipWithoutMoto)('archive health from the agent service', () => {
  let moto: Moto;
  let cloudwatch: CloudWatchClient;
  beforeAll(async () => {
    moto = await Moto.start();
    cloudwatch = new CloudWatchClient(moto.client());
  });
  afterAll(async () => {
    cloudwatch?.destroy();
    await moto?.stop();
  });

  /** The newest value CloudWatch holds of the cluster's `metric` (`undefined`: the fleet's), sampled each second. */
  async function newest(cluster: string | undefined, metric: string): Promise<number | undefined> {
    const answer = await cloudwatch.send(
      new GetMetricDataCommand({
        StartTime: new Date(Date.now() - 10 * 60_000),
        EndTime: new Date(Date.now() + 60_000),
        ScanBy: 'TimestampDescending',
        MetricDataQueries: [
          {
            Id: 'm',
            MetricStat: {
              Metric: {
                Namespace: hostMetrics.namespace,
                MetricName: metric,
                ...(cluster ? { Dimensions: [{ Name: hostMetrics.dimension, Value: cluster }] } : {}),
              },
              Period: 1,
              Stat: 'Maximum',
            },
          },
        ],
      }),
    );
    const result = answer.MetricDataResults?.[0];
    const pairs = (result?.Timestamps ?? []).map((t, i) => [t.getTime(), result!.Values![i]!] as const);
    return pairs.sort((a, b) => b[0] - a[0])[0]?.[1];
  }

  async function scrape(port: number, accept?: string) {
    const answer = await fetch(`http://127.0.0.1:${port}/metrics`, accept ? { headers: { accept } } : {});
    expect(answer.status).toBe(200);
    const text = await answer.text();
    const families = parsePrometheusTextFormat(text);
    const value = (name: string) =>
      Number(
        families.find((f) => f.name === name)?.metrics.find((m) => m.labels?.cluster === 'orders-db')?.value,
      );
    return { contentType: answer.headers.get('content-type') ?? '', text, value };
  }

  it('raises ArchiveLagSeconds and ReadyFiles while archive_command fails, and lowers them once it works', async () => {
    const { cluster, env, stateDir } = await clusterForTest();
    const gate = archivingGate(cluster);
    await archiveEverything(cluster);
    const port = await freePort();
    const agent = spawnWatched(
      process.execPath,
      [
        pgsnapBin,
        'agent',
        '--cluster',
        'orders-db',
        '--metrics-interval',
        '1s',
        '--metrics-listen',
        `127.0.0.1:${port}`,
      ],
      { ...env, ...moto.env, PGSNAP_STATE_DIR: stateDir },
    );
    onTestFinished(async () => {
      agent.child.kill('SIGTERM');
      await agent.exited;
    });
    await agent.waitFor('listening on');

    writeFileSync(gate, '');
    await switchSegments(cluster, 3);
    await waitFor('the archiver to fail', async () =>
      (await archiverStats(cluster)).failed > 0 ? true : undefined,
    );

    const lagging = await waitFor('CloudWatch to hold archive lag and 3 ready files', async () => {
      const [lag, ready] = [
        await newest('orders-db', hostMetrics.archiveLag),
        await newest(undefined, fleetHostMetrics.readyFiles),
      ];
      return lag !== undefined && lag >= 2 && ready !== undefined && ready >= 3 ? { lag, ready } : undefined;
    });
    expect(lagging.ready).toBeGreaterThanOrEqual(3);
    expect(await newest('orders-db', hostMetrics.walVolumeFreeBytes)).toBeGreaterThan(0);
    const listed = await cloudwatch.send(new ListMetricsCommand({ Namespace: hostMetrics.namespace }));
    // Only what a per-cluster alarm needs carries the cluster (each name × cluster is a billed metric).
    const named = (m: { MetricName?: string; Dimensions?: Array<{ Value?: string }> }) =>
      `${m.MetricName}${m.Dimensions?.[0] ? ` ${m.Dimensions[0].Value}` : ''}`;
    expect(new Set(listed.Metrics?.map(named))).toEqual(
      new Set([
        `${hostMetrics.archiveLag} orders-db`,
        `${hostMetrics.walVolumeFreeBytes} orders-db`,
        fleetHostMetrics.readyFiles,
        fleetHostMetrics.archiveFailures,
      ]),
    );
    const failures = await waitFor('ArchiveFailures above 0', async () => {
      const answer = await cloudwatch.send(
        new GetMetricDataCommand({
          StartTime: new Date(Date.now() - 10 * 60_000),
          EndTime: new Date(Date.now() + 60_000),
          MetricDataQueries: [
            {
              Id: 'f',
              MetricStat: {
                Metric: {
                  Namespace: hostMetrics.namespace,
                  MetricName: fleetHostMetrics.archiveFailures,
                },
                Period: 600,
                Stat: 'Sum',
              },
            },
          ],
        }),
      );
      const sum = (answer.MetricDataResults?.[0]?.Values ?? []).reduce((a, b) => a + b, 0);
      return sum > 0 ? sum : undefined;
    });
    expect(failures).toBeGreaterThan(0);

    const prometheus = await waitFor('the endpoint to show 3 ready files', async () => {
      const scraped = await scrape(port);
      return scraped.value('pgsnap_archive_ready_files') >= 3 ? scraped : undefined;
    });
    expect(prometheus.contentType).toContain('text/plain');
    expect(prometheus.value('pgsnap_archive_lag_seconds')).toBeGreaterThan(0);
    expect(prometheus.value('pgsnap_wal_volume_free_bytes')).toBeGreaterThan(0);
    expect(prometheus.value('pgsnap_archive_failed_total')).toBeGreaterThan(0);
    const openMetrics = await scrape(port, 'application/openmetrics-text; version=1.0.0');
    expect(openMetrics.contentType).toContain('application/openmetrics-text');
    expect(openMetrics.text.trimEnd().endsWith('# EOF')).toBe(true);
    expect(openMetrics.value('pgsnap_archive_ready_files')).toBeGreaterThanOrEqual(3);

    rmSync(gate);
    await archiveEverything(cluster);
    await waitFor('CloudWatch to hold no lag and no ready files', async () => {
      const [lag, ready] = [
        await newest('orders-db', hostMetrics.archiveLag),
        await newest(undefined, fleetHostMetrics.readyFiles),
      ];
      return lag === 0 && ready === 0 ? true : undefined;
    });
    const recovered = await waitFor('the endpoint to show no ready files', async () => {
      const scraped = await scrape(port);
      return scraped.value('pgsnap_archive_ready_files') === 0 ? scraped : undefined;
    });
    expect(recovered.value('pgsnap_archive_lag_seconds')).toBe(0);
  });
});

describe('pgsnap agent refuses metrics flags it cannot honour', () => {
  it.each([
    [['--metrics-listen', '127.0.0.1:9187'], 'needs the cluster whose archiving to watch'],
    [['--cluster', 'orders-db', '--metrics-listen', '0.0.0.0:9187'], 'loopback address only'],
    [['--cluster', 'orders-db', '--metrics-cloudwatch', 'off'], 'give --metrics-listen'],
    [['--cluster', 'orders-db', '--metrics-interval', '30m'], 'outside 1s to 10m'],
    [['--cluster', 'orders-db'], 'set AWS_REGION'],
  ])('pgsnap agent %j', async (flags, message) => {
    const result = await pgsnap(['agent', ...flags], { PGSNAP_STATE_DIR: '/nonexistent/pgsnap-state' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
  });
});
