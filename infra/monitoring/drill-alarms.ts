/**
 * The restore drills' alarms, per cluster with `drills`: more than `days`
 * since the last successful drill (infra/monitoring/backup-age.ts reports it), and (with `rtoMinutes`) a drill slower than
 * its RTO objective. Made in the Restore construct, beside the drill schedule.
 */
import { Duration } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { freshnessMetrics } from '#domain/backup/freshness';
import { restoreMetrics } from '#domain/restore/steps';
import type { DrillConfig } from '../config/config.ts';
import { clusterMetric } from './archive-alarms.ts';

/** The alarms on `cluster`'s drills, notifying `topic` (the stack's alarm topic; none in the DR stack). */
export function drillAlarms(scope: Construct, cluster: string, drills: DrillConfig, topic?: ITopic): void {
  /*
   * Days since the last successful drill, a level report-backup-age publishes every 15 minutes: the
   * alarm reads the last hour, so it has no 7-day edge (a count of drills summed over `days` periods
   * of a day reaches back exactly a week at 7, and a weekly drill a little later than last week's
   * fired it for hours). No datum (no drill ever, or the reporter down) is a breach too.
   */
  const noDrill = new Alarm(scope, `${cluster}-NoDrill`, {
    alarmDescription:
      `No restore drill of ${cluster} succeeded in ${drills.days} days: nobody knows whether its backups restore. ` +
      "Check the drill schedule and the restore state machine's last executions, and the restore records (pgsnap restores list).",
    metric: clusterMetric(cluster, freshnessMetrics.daysSinceDrill, 'Minimum', Duration.hours(1)),
    threshold: drills.days,
    evaluationPeriods: 1,
    comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
    treatMissingData: TreatMissingData.BREACHING,
  });
  if (topic) noDrill.addAlarmAction(new SnsAction(topic));
  if (drills.rtoMinutes) {
    // No drill is the alarm above; this one is a drill that restored, but slower than the objective.
    const slow = new Alarm(scope, `${cluster}-DrillRtoOverObjective`, {
      alarmDescription:
        `A restore drill of ${cluster} took longer than its ${drills.rtoMinutes}-minute RTO objective, from the ` +
        'request to the restored server accepting connections. Its restore record (pgsnap restores show) has each ' +
        "phase's time: the volumes, the instance, or the WAL to replay since the backup.",
      metric: clusterMetric(cluster, restoreMetrics.drillRtoSeconds, 'Maximum', Duration.days(1)),
      threshold: drills.rtoMinutes * 60,
      evaluationPeriods: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    if (topic) slow.addAlarmAction(new SnsAction(topic));
  }
}
