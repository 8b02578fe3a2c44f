/**
 * The alarm on retention that failed (a run that threw: a repository or EC2 it
 * could not reach, a delete refused), made in the Retention construct.
 */
import { Duration } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { Construct } from 'constructs';

/** An alarm when `fn` (apply-retention on the `side` repository) failed in the last day. */
export function retentionFailedAlarm(scope: Construct, fn: IFunction, side: 'source' | 'DR'): Alarm {
  // A run that fails deletes nothing more and is retried by the next; failing for a day is worth a look.
  return new Alarm(scope, 'Failed', {
    alarmDescription:
      `pgsnap ${side} retention failed in the last day: what it should delete stays (and costs) until ` +
      'it succeeds. Its log group has the reason (the errorType and errorMessage of the failed invocation).',
    metric: fn.metricErrors({ period: Duration.days(1), statistic: 'Sum' }),
    threshold: 1,
    evaluationPeriods: 1,
    comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    treatMissingData: TreatMissingData.NOT_BREACHING,
  });
}
