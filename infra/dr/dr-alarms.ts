/**
 * Telling people of DR: the DR stack's own alarm topic (an alarm notifies
 * only a topic of its Region, and the DR stack may be in another account),
 * with the environment's email subscriptions, and the alarm on a DR restore
 * or drill execution that failed. The DR retention alarm and the DR drill
 * alarms notify the same topic.
 */
import { Duration } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, MathExpression, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { Topic } from 'aws-cdk-lib/aws-sns';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { alarmTopic } from '../monitoring/alarm-topic.ts';

export interface DrAlarmsProps {
  environment: string;
  emails: string[];
}

export class DrAlarms extends Construct {
  readonly topic: Topic;

  constructor(scope: Construct, id: string, props: DrAlarmsProps) {
    super(scope, id);
    this.topic = alarmTopic(this, { displayName: `pgsnap ${props.environment} DR`, emails: props.emails });
  }

  /** Each of `alarms` notifies the DR topic. */
  notify(...alarms: Alarm[]): void {
    const action = new SnsAction(this.topic);
    for (const alarm of alarms) alarm.addAlarmAction(action);
  }

  /**
   * An alarm when a DR restore or drill execution failed, timed out or was aborted: a DR drill that fails
   * is news the day it fails, not once `days` have passed without one.
   */
  restoreFailed(stateMachine: IStateMachine): Alarm {
    const sum = { period: Duration.minutes(5), statistic: 'Sum' };
    const alarm = new Alarm(this, 'RestoreExecutionsFailed', {
      alarmDescription:
        'A pgsnap restore or drill in DR failed, timed out or was aborted; its execution history and restore ' +
        'record (pgsnap restores show, on the DR repository) say why. What it made was released by its cleanup.',
      // Step Functions counts the three ends apart (ExecutionsFailed, ExecutionsTimedOut, ExecutionsAborted).
      metric: new MathExpression({
        expression: 'FILL(failed, 0) + FILL(timedOut, 0) + FILL(aborted, 0)',
        usingMetrics: {
          failed: stateMachine.metricFailed(sum),
          timedOut: stateMachine.metricTimedOut(sum),
          aborted: stateMachine.metricAborted(sum),
        },
        period: Duration.minutes(5),
        label: 'DR restores that did not succeed',
      }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    this.notify(alarm);
    return alarm;
  }
}
