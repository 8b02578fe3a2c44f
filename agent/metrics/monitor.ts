/**
 * The agent service's archive-health monitor: every interval, one sample of
 * the cluster (archive-health.ts), published to CloudWatch and kept for the
 * OpenMetrics endpoint. A sample that cannot be taken publishes nothing: the
 * stack's ClustersWithoutArchiveHealth alarm then says so, rather than a made-up zero.
 */
import type { Server } from 'node:http';
import { messageOf } from '#domain/errors';
import { type Client, connect } from '../postgres/client.ts';
import { type ArchiveHealth, sampleArchiveHealth } from './archive-health.ts';
import { type MetricsPublisher, metricData } from './cloudwatch.ts';
import { ArchiveHealthMetrics, type ListenAddress } from './openmetrics.ts';

export interface MonitorConfig {
  cluster: string;
  intervalMs: number;
  /** Where the OpenMetrics endpoint listens, if anywhere. */
  listen?: ListenAddress;
  /** Undefined: no CloudWatch (`--metrics-cloudwatch off`). */
  publisher?: MetricsPublisher;
  /** The state directory of wal-push --async, for its backlog. */
  spoolRoot: string;
}

export interface Monitor {
  /** The OpenMetrics endpoint's port, when it listens. */
  port: number | undefined;
  stop(): Promise<void>;
}

export async function startMonitor(config: MonitorConfig, log: (message: string) => void): Promise<Monitor> {
  const metrics = new ArchiveHealthMetrics();
  let server: Server | undefined;
  let port: number | undefined;
  if (config.listen) {
    ({ server, port } = await metrics.serve(config.listen));
    log(`serving archive health on http://${config.listen.host}:${port}/metrics`);
  }
  let client: Client | undefined;
  let previous: ArchiveHealth | undefined;
  const reported = new Set<string>();
  /** Each problem once while it lasts, not once a minute. */
  const report = (problems: string[]) => {
    for (const problem of problems) if (!reported.has(problem)) log(`${config.cluster}: ${problem}`);
    reported.clear();
    for (const problem of problems) reported.add(problem);
  };

  const sample = async () => {
    let health: ArchiveHealth;
    try {
      client ??= await connect({ applicationName: 'pgsnap agent metrics' });
      health = await sampleArchiveHealth(client, { cluster: config.cluster, spoolRoot: config.spoolRoot });
    } catch (error) {
      report([`archive health not sampled: ${messageOf(error)}`]);
      const broken = client;
      client = undefined;
      await broken?.end().catch(() => {});
      return;
    }
    report(health.problems);
    // failed_count only grows, unless the statistics were reset: then everything since the reset is new.
    const failures =
      previous === undefined
        ? 0
        : health.failedCount >= previous.failedCount
          ? health.failedCount - previous.failedCount
          : health.failedCount;
    previous = health;
    metrics.update(config.cluster, health);
    if (config.publisher) {
      try {
        await config.publisher.publish(metricData(config.cluster, health, failures));
      } catch (error) {
        report([...health.problems, `CloudWatch did not take the metrics: ${messageOf(error)}`]);
      }
    }
  };

  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const loop = () => {
    running = sample().finally(() => {
      if (!stopped) timer = setTimeout(loop, config.intervalMs);
    });
  };
  loop();
  return {
    port,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
      clearTimeout(timer);
      await client?.end().catch(() => {});
      config.publisher?.close();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    },
  };
}
