/**
 * The restore drills' alarms, per cluster with `drills`: none of the last
 * `days` had a successful drill, and (with `rtoMinutes`) a drill slower than
 * its RTO objective. Made in the Restore construct, beside the drill schedule.
 */
import { Duration } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { restoreMetrics } from '#domain/restore/steps';
import type { DrillConfig } from '../config/config.ts';
import { clusterMetric } from './archive-alarms.ts';

/** The alarms on `cluster`'s drills, notifying `topic` (the stack's alarm topic; none in the DR stack). */
export function drillAlarms(scope: Construct, cluster: string, drills: DrillConfig, topic?: ITopic): void {
  // One datapoint a day; the alarm fires when none of the last drillDays had a successful drill.
  const noDrill = new Alarm(scope, `${cluster}-NoDrill`, {
    alarmDescription:
      `No restore drill of ${cluster} succeeded in ${drills.days} days: nobody knows whether its backups restore. ` +
      "Check the drill schedule and the restore state machine's last executions, and the restore records (pgsnap restores list).",
    metric: clusterMetric(cluster, restoreMetrics.drillSucceeded, 'Sum', Duration.days(1)),
    threshold: 1,
    evaluationPeriods: drills.days,
    datapointsToAlarm: drills.days,
    comparisonOperator: ComparisonOperator.LESS_THAN_THRESHOLD,
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
