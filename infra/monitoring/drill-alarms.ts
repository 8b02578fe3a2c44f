/**
 * The restore drills' alarm, per cluster with `drills.rtoMinutes`: a drill
 * slower than its RTO objective. More than `days` since the last successful
 * drill is the fleet's ClustersWithoutRecentDrill alarm (fleet-alarms.ts, over
 * report-backup-age's count). Made in the Restore construct, beside the drill
 * schedule.
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
  if (drills.rtoMinutes) {
    // No drill is the fleet's ClustersWithoutRecentDrill (fleet-alarms.ts); this one is a drill that restored,
    // but slower than the objective.
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
