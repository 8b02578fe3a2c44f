/**
 * Per cluster, the two alarms on the archive health the agent publishes from
 * the database host (agent/metrics/), each with the cluster's own threshold
 * (a host that publishes nothing is the fleet's ClustersWithoutArchiveHealth
 * alarm, fleet-alarms.ts): a snapshot restores to the moment it was
 * taken, and everything after it is archived WAL, so the recovery point an
 * operator really has is the age of the last archived WAL file, not of the
 * last snapshot.
 */
import { Duration } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, Metric, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import type { ClusterConfig } from '../config/config.ts';
import { backupMetrics, hostMetrics } from './metrics-and-events.ts';

export interface ArchiveAlarmsProps {
  clusters: ClusterConfig[];
  topic: ITopic;
}

/** The metric `name` of `cluster` from its host, by one-minute `statistic`. */
export function hostMetric(cluster: string, name: string, statistic: string, period = Duration.minutes(1)) {
  return new Metric({
    namespace: hostMetrics.namespace,
    metricName: name,
    dimensionsMap: { [hostMetrics.dimension]: cluster },
    statistic,
    period,
  });
}

/** The metric `name` of `cluster` from the state machines and Lambdas (namespace pgsnap), by `statistic` per `period`. */
export function clusterMetric(cluster: string, name: string, statistic: string, period: Duration) {
  return new Metric({
    namespace: backupMetrics.namespace,
    metricName: name,
    dimensionsMap: { [backupMetrics.dimension]: cluster },
    statistic,
    period,
  });
}

export class ArchiveAlarms extends Construct {
  constructor(scope: Construct, id: string, props: ArchiveAlarmsProps) {
    super(scope, id);
    const action = new SnsAction(props.topic);
    for (const cluster of props.clusters.filter((c) => c.watchArchiving)) {
      const name = cluster.name;
      // Three minutes in a row: the lag is measured from the last archived file, so on a quiet server a
      // segment that has just become ready reads as old for the moment until the archiver takes it.
      new Alarm(this, `${name}-ArchivingStalled`, {
        alarmDescription:
          `WAL of ${name} has waited more than ${cluster.walRpoMinutes} minutes to be archived: a restore now ` +
          'would lose everything since the last archived file, whatever the snapshots say. Check first ' +
          "pg_stat_archiver's last_failed_wal and the PostgreSQL log for archive_command's error, or run " +
          '`pgsnap doctor` on the host; then whether the host reaches the repository (S3, its endpoint, the ' +
          "instance role's policy).",
        metric: hostMetric(name, hostMetrics.archiveLag, 'Maximum'),
        threshold: cluster.walRpoMinutes * 60,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        // No data is the fleet's ClustersWithoutArchiveHealth alarm's to report (fleet-alarms.ts).
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }).addAlarmAction(action);
      new Alarm(this, `${name}-WalFilling`, {
        alarmDescription:
          `The file system of pg_wal of ${name} has less than ${cluster.walMinFreeMiB} MiB free; when it is ` +
          'full PostgreSQL stops. Check first whether archiving is stalled (ReadyFiles, the archiving-stalled ' +
          'alarm): a segment stays in pg_wal until it is archived. Then replication slots that hold WAL ' +
          "(pg_replication_slots: an inactive slot's restart_lsn), then max_wal_size and wal_keep_size; grow " +
          'the volume if the workload needs the room.',
        metric: hostMetric(name, hostMetrics.walVolumeFreeBytes, 'Minimum'),
        threshold: cluster.walMinFreeMiB * 1024 * 1024,
        evaluationPeriods: 2,
        datapointsToAlarm: 2,
        comparisonOperator: ComparisonOperator.LESS_THAN_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }).addAlarmAction(action);
    }
  }
}
