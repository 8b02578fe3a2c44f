/** Archive health as CloudWatch metrics: one PutMetricData per sample, in the hosts' namespace. */
import { CloudWatchClient, type MetricDatum, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { fleetHostMetrics, hostMetrics } from '#domain/host-metrics';
import { awsClientConfig } from '../host/aws-timeouts.ts';
import type { ArchiveHealth } from './archive-health.ts';

/**
 * The data of one sample; `failuresSincePrevious` is the increase of failed_count since the one before.
 * The lag and the free space carry the cluster (their alarms are per cluster); the counts are the
 * fleet's (domain/host-metrics.ts says why).
 */
export function metricData(
  cluster: string,
  health: ArchiveHealth,
  failuresSincePrevious: number,
): MetricDatum[] {
  const datum = (
    name: string,
    value: number,
    unit: MetricDatum['Unit'],
    perCluster: boolean,
  ): MetricDatum => ({
    MetricName: name,
    ...(perCluster ? { Dimensions: [{ Name: hostMetrics.dimension, Value: cluster }] } : {}),
    Timestamp: health.at,
    Value: value,
    Unit: unit,
  });
  const data = [
    datum(hostMetrics.archiveLag, Math.round(health.archiveLagSeconds), 'Seconds', true),
    datum(fleetHostMetrics.readyFiles, health.readyFiles, 'Count', false),
    datum(fleetHostMetrics.archiveFailures, failuresSincePrevious, 'Count', false),
  ];
  if (health.walVolumeFreeBytes !== undefined) {
    data.push(datum(hostMetrics.walVolumeFreeBytes, health.walVolumeFreeBytes, 'Bytes', true));
  }
  if (health.pusherBacklog !== undefined) {
    data.push(datum(fleetHostMetrics.pusherBacklog, health.pusherBacklog, 'Count', false));
  }
  return data;
}

export interface MetricsPublisher {
  publish(data: MetricDatum[]): Promise<void>;
  close(): void;
}

/** Region and credentials from the usual AWS_* settings and the instance role. */
export function cloudWatchPublisher(client = new CloudWatchClient(awsClientConfig())): MetricsPublisher {
  return {
    async publish(data) {
      await client.send(new PutMetricDataCommand({ Namespace: hostMetrics.namespace, MetricData: data }));
    },
    close() {
      client.destroy();
    },
  };
}
