/**
 * The metrics the agent publishes from each database host, shared by the
 * agent (which publishes them) and the stack (which alarms on them and grants
 * PutMetricData for this namespace only).
 *
 * A namespace of their own, not the backup state machine's `pgsnap`: the
 * instance role may publish here, and a host that could publish into `pgsnap`
 * could also send `BackupCompleted` and keep the RPO alarm quiet while no
 * backup completes.
 *
 * Only the two figures a per-cluster alarm needs carry the `Cluster`
 * dimension (each name × cluster is a custom metric of its own, $0.30 a
 * month): the archive lag and pg_wal's free space, whose thresholds are each
 * cluster's (walRpoMinutes, walMinFreeMiB). The counts are published for the
 * fleet, without a dimension (the dashboard's "is anything waiting anywhere");
 * one host's detail is `pgsnap doctor`, its OpenMetrics endpoint and its log.
 */
import {
  type CloudWatchClient,
  GetMetricDataCommand,
  type MetricDataQuery,
} from '@aws-sdk/client-cloudwatch';

export const hostMetrics = {
  namespace: 'pgsnap/hosts',
  dimension: 'Cluster',
  /**
   * Seconds since the last archived WAL file while `.ready` files wait; 0 when none waits. Published
   * with every sample, so its absence means the agent is silent (report-backup-age counts those hosts).
   */
  archiveLag: 'ArchiveLagSeconds',
  /** Free bytes of the file system that holds pg_wal, as an unprivileged user sees them. */
  walVolumeFreeBytes: 'WalVolumeFreeBytes',
} as const;

/** What every host publishes without the Cluster dimension: the fleet's sums and extremes. */
export const fleetHostMetrics = {
  /** `.ready` files in pg_wal/archive_status: segments the archiver has not archived yet. */
  readyFiles: 'ReadyFiles',
  /** Failed archive_command runs since the previous sample (pg_stat_archiver.failed_count's increase). */
  archiveFailures: 'ArchiveFailures',
  /** Ready files the async pusher (wal-push --async) has not stored yet; only where it is used. */
  pusherBacklog: 'PusherBacklog',
} as const;

/** How far back a host's archive lag counts as "it is alive": the agent samples every minute. */
export const archiveHealthWindowSeconds = 15 * 60;

/**
 * Which of `clusters` published an archive lag in the last
 * `archiveHealthWindowSeconds`. One GetMetricData per 500 clusters (its
 * limit), the sample count of each cluster's ArchiveLagSeconds over one
 * period: $0.01 per 1,000 metrics requested, about $0.03 per cluster-month at
 * a run every 15 minutes, and it is the very metric the archiving alarm
 * watches, so a host it counts as alive is one that alarm can see. (The
 * repository's newest WAL object says nothing on a quiet server without
 * archive_timeout, and ListMetrics' RecentlyActive looks back 3 hours.)
 */
export async function clustersWithArchiveHealth(
  cloudwatch: CloudWatchClient,
  clusters: string[],
  now = new Date(),
): Promise<Set<string>> {
  const alive = new Set<string>();
  const start = new Date(now.getTime() - archiveHealthWindowSeconds * 1000);
  // The agent stamps each sample with the host's clock, which may run a little ahead of this one.
  const end = new Date(now.getTime() + 5 * 60 * 1000);
  for (let i = 0; i < clusters.length; i += 500) {
    const batch = clusters.slice(i, i + 500);
    const queries: MetricDataQuery[] = batch.map((cluster, n) => ({
      Id: `c${i + n}`,
      MetricStat: {
        Metric: {
          Namespace: hostMetrics.namespace,
          MetricName: hostMetrics.archiveLag,
          Dimensions: [{ Name: hostMetrics.dimension, Value: cluster }],
        },
        Period: archiveHealthWindowSeconds,
        Stat: 'SampleCount',
      },
    }));
    let token: string | undefined;
    do {
      const answer = await cloudwatch.send(
        new GetMetricDataCommand({
          MetricDataQueries: queries,
          StartTime: start,
          EndTime: end,
          ...(token ? { NextToken: token } : {}),
        }),
      );
      for (const result of answer.MetricDataResults ?? []) {
        const index = Number(result.Id?.slice(1)) - i;
        const cluster = batch[index];
        if (cluster !== undefined && (result.Values ?? []).some((v) => v > 0)) alive.add(cluster);
      }
      token = answer.NextToken;
    } while (token);
  }
  return alive;
}
