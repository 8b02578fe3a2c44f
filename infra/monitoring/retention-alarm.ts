/**
 * The alarm on retention that failed (a run that threw: a repository or EC2 it
 * could not reach, a delete refused; or the scheduled start that could not
 * invoke it), made in the Retention construct.
 */
import { Duration } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, MathExpression, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { Construct } from 'constructs';

/**
 * An alarm when `apply` (apply-retention on the `side` repository) or `start`
 * (start-retention, which invokes it on schedule) failed in the last day.
 */
export function retentionFailedAlarm(
  scope: Construct,
  functions: { apply: IFunction; start: IFunction },
  side: 'source' | 'DR',
): Alarm {
  const errors = { period: Duration.days(1), statistic: 'Sum' };
  // A run that fails deletes nothing more and is retried by the next; failing for a day is worth a look.
  return new Alarm(scope, 'Failed', {
    alarmDescription:
      `pgsnap ${side} retention failed in the last day: what it should delete stays (and costs) until ` +
      'it succeeds. The log group of the function that failed (apply-retention, or start-retention when the ' +
      'scheduled start could not invoke it) has the reason (the errorType and errorMessage of the invocation).',
    metric: new MathExpression({
      expression: 'apply + start',
      usingMetrics: {
        apply: functions.apply.metricErrors(errors),
        start: functions.start.metricErrors(errors),
      },
      period: Duration.days(1),
      label: `${side} retention errors`,
    }),
    threshold: 1,
    evaluationPeriods: 1,
    comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    treatMissingData: TreatMissingData.NOT_BREACHING,
  });
}
