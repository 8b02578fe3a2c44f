/**
 * The alarms on DR copies, made in the AfterBackup construct: one per copied
 * cluster on failed copies (the backup itself is completed at the source when
 * a copy fails; the alarm says the DR side is behind), and one for the whole
 * environment on copy lag: a copied cluster whose newest backup in DR is
 * older than its DR RPO (report-backup-age counts them every 15 minutes, so
 * a fleet of any size costs one metric and one alarm; each cluster's own lag
 * is NewestDrCopyAgeSeconds, on the dashboard and in `pgsnap backups list`).
 */
import { Duration } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, Metric, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { fleetFreshnessMetrics } from '#domain/backup/freshness';
import { clusterMetric } from './archive-alarms.ts';
import { backupMetrics, copyMetrics } from './metrics-and-events.ts';

/** An alarm per name in `clusters` when a DR copy of its backup failed, notifying `topic`. */
export function copyFailedAlarms(scope: Construct, clusters: string[], topic: ITopic): void {
  for (const cluster of clusters) {
    new Alarm(scope, `${cluster}-CopyFailed`, {
      alarmDescription: `A DR copy of a ${cluster} backup failed; the backup itself is completed at the source`,
      metric: clusterMetric(cluster, copyMetrics.failed, 'Sum', Duration.minutes(5)),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    }).addAlarmAction(new SnsAction(topic));
  }
}

/** The one copy-lag alarm: some copied cluster is behind its DR RPO, or the lag was not reported for 30 minutes. */
export function copyLagAlarm(scope: Construct, topic: ITopic): Alarm {
  const alarm = new Alarm(scope, 'CopyLag', {
    alarmDescription:
      "A cluster's newest backup in DR is older than its DR RPO (dr.rpoMinutes, or rpoHours + copyHours): the " +
      "report-backup-age log names it, the dashboard's backup age shows each cluster's lag. Missing data (the " +
      'report stopped) counts too.',
    metric: new Metric({
      namespace: backupMetrics.namespace,
      metricName: fleetFreshnessMetrics.clustersBehindDrRpo,
      statistic: 'Maximum',
      // The report runs every 15 minutes in a 5-minute flexible window: every 30 minutes holds one.
      period: Duration.minutes(30),
    }),
    threshold: 1,
    evaluationPeriods: 1,
    comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    treatMissingData: TreatMissingData.BREACHING,
  });
  alarm.addAlarmAction(new SnsAction(topic));
  return alarm;
}
