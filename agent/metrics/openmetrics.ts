/**
 * Archive health for Prometheus, beside PostgreSQL's own exporter: an HTTP
 * endpoint on a loopback address only (`--metrics-listen 127.0.0.1:9187`),
 * written by prom-client. A scraper that asks for OpenMetrics
 * (Accept: application/openmetrics-text) gets it; others get the Prometheus
 * text format.
 */
import { createServer, type Server } from 'node:http';
import { isIP } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import { UsageError } from '#domain/errors';
import type { ArchiveHealth } from './archive-health.ts';

export interface ListenAddress {
  host: string;
  port: number;
}

const loopback = new Set(['127.0.0.1', '::1', 'localhost']);

/** `HOST:PORT` (`[::1]:PORT` for IPv6), on a loopback address: the endpoint has no authentication. */
export function parseListen(value: string): ListenAddress {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`--metrics-listen ${JSON.stringify(value)}: give HOST:PORT, e.g. 127.0.0.1:9187`);
  }
  if (!loopback.has(host) && !(isIP(host) === 4 && host.startsWith('127.'))) {
    throw new UsageError(
      `--metrics-listen ${value}: the endpoint has no authentication and listens on a loopback address ` +
        'only (127.0.0.1 or [::1]); let a local Prometheus or agent scrape it',
    );
  }
  return { host, port };
}

/** The gauges, in a Prometheus registry and an OpenMetrics one. */
export class ArchiveHealthMetrics {
  private readonly prometheus = new Registry();
  private readonly openMetrics = new Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE>();
  private readonly gauges;
  private readonly failures;

  constructor() {
    this.openMetrics.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    const registers = [this.prometheus, this.openMetrics];
    const gauge = (name: string, help: string) =>
      new Gauge({ name: `pgsnap_${name}`, help, labelNames: ['cluster'], registers });
    this.gauges = {
      lag: gauge('archive_lag_seconds', 'seconds since the last archived WAL file while .ready files wait'),
      ready: gauge('archive_ready_files', '.ready files in pg_wal/archive_status'),
      oldest: gauge('archive_oldest_ready_seconds', "the oldest .ready file's age"),
      archived: gauge('archive_archived_files', 'pg_stat_archiver.archived_count'),
      lastArchived: gauge('archive_last_archived_timestamp_seconds', 'pg_stat_archiver.last_archived_time'),
      free: gauge('wal_volume_free_bytes', "free bytes of pg_wal's file system"),
      size: gauge('wal_volume_size_bytes', "size of pg_wal's file system"),
      backlog: gauge('pusher_backlog_files', 'ready files the async pusher has not stored yet'),
      sampled: gauge('archive_sample_timestamp_seconds', 'when the agent last sampled archive health'),
    };
    this.failures = new Counter({
      name: 'pgsnap_archive_failed_total',
      help: 'pg_stat_archiver.failed_count',
      labelNames: ['cluster'],
      registers,
    });
  }

  update(cluster: string, health: ArchiveHealth): void {
    const labels = { cluster };
    const set = (g: Gauge, value: number | undefined) => {
      if (value === undefined) g.remove(labels);
      else g.set(labels, value);
    };
    set(this.gauges.lag, health.archiveLagSeconds);
    set(this.gauges.ready, health.readyFiles);
    set(this.gauges.oldest, health.oldestReadySeconds);
    set(this.gauges.archived, health.archivedCount);
    set(
      this.gauges.lastArchived,
      health.lastArchivedTime ? health.lastArchivedTime.getTime() / 1000 : undefined,
    );
    set(this.gauges.free, health.walVolumeFreeBytes);
    set(this.gauges.size, health.walVolumeTotalBytes);
    set(this.gauges.backlog, health.pusherBacklog);
    set(this.gauges.sampled, health.at.getTime() / 1000);
    // A counter only goes up; pg_stat_archiver's can be reset (pg_stat_reset_shared), which Prometheus reads as a reset.
    this.failures.remove(labels);
    this.failures.inc(labels, health.failedCount);
  }

  /** Serves GET /metrics; resolves once it listens, with the port (0 picks a free one). */
  async serve(address: ListenAddress): Promise<{ server: Server; port: number }> {
    const server = createServer((request, response) => {
      if (request.method !== 'GET' || (request.url ?? '/').split('?')[0] !== '/metrics') {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('pgsnap serves /metrics only\n');
        return;
      }
      const registry = /application\/openmetrics-text/.test(request.headers.accept ?? '')
        ? this.openMetrics
        : this.prometheus;
      registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (error: unknown) => response.writeHead(500).end(String(error)),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(address.port, address.host, () => resolve());
    });
    return { server, port: (server.address() as { port: number }).port };
  }
}
