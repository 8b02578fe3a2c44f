/** Archive health as CloudWatch metrics: one PutMetricData per sample, in the hosts' namespace. */
import { CloudWatchClient, type MetricDatum, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { hostMetrics } from '#domain/host-metrics';
import { awsClientConfig } from '../host/aws-timeouts.ts';
import type { ArchiveHealth } from './archive-health.ts';

/** The data of one sample; `failuresSincePrevious` is the increase of failed_count since the one before. */
export function metricData(
  cluster: string,
  health: ArchiveHealth,
  failuresSincePrevious: number,
): MetricDatum[] {
  const datum = (name: string, value: number, unit: MetricDatum['Unit']): MetricDatum => ({
    MetricName: name,
    Dimensions: [{ Name: hostMetrics.dimension, Value: cluster }],
    Timestamp: health.at,
    Value: value,
    Unit: unit,
  });
  const data = [
    datum(hostMetrics.archiveLag, Math.round(health.archiveLagSeconds), 'Seconds'),
    datum(hostMetrics.readyFiles, health.readyFiles, 'Count'),
    datum(hostMetrics.archiveFailures, failuresSincePrevious, 'Count'),
  ];
  if (health.walVolumeFreeBytes !== undefined) {
    data.push(datum(hostMetrics.walVolumeFreeBytes, health.walVolumeFreeBytes, 'Bytes'));
  }
  if (health.pusherBacklog !== undefined) {
    data.push(datum(hostMetrics.pusherBacklog, health.pusherBacklog, 'Count'));
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
