/**
 * The alarms on failed DR copies: one per copied cluster, made in the
 * AfterBackup construct. The backup itself is completed at the source when a
 * copy fails; the alarm says the DR side is behind.
 */
import { Duration } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { clusterMetric } from './archive-alarms.ts';
import { copyMetrics } from './metrics-and-events.ts';

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
