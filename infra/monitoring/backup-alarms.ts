/**
 * Telling people: an SNS topic (email subscriptions from the configuration),
 * the failure (and optionally completion) events forwarded to it (each names
 * its cluster and backup: no per-cluster alarm on BackupFailed, which cost
 * $0.10 a cluster-month to say less), and an alarm on failed executions. The
 * RPO alarm, "a cluster's newest completed backup is older than rpoHours", is
 * one for the fleet over report-backup-age's count (fleet-alarms.ts).
 */
import { Duration } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { EventField, Rule, RuleTargetInput } from 'aws-cdk-lib/aws-events';
import { SnsTopic } from 'aws-cdk-lib/aws-events-targets';
import type { Topic } from 'aws-cdk-lib/aws-sns';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { ClusterConfig, EnvironmentConfig } from '../config/config.ts';
import { alarmTopic } from './alarm-topic.ts';
import { backupEvents } from './metrics-and-events.ts';

export interface BackupAlarmsProps {
  clusters: ClusterConfig[];
  notifications: EnvironmentConfig['notifications'];
  stateMachine: IStateMachine;
}

export class BackupAlarms extends Construct {
  readonly topic: Topic;

  constructor(scope: Construct, id: string, props: BackupAlarmsProps) {
    super(scope, id);
    this.topic = alarmTopic(this, { displayName: 'pgsnap backups', emails: props.notifications.emails });
    const action = new SnsAction(this.topic);

    const detailTypes: string[] = [backupEvents.failed];
    if (props.notifications.onSuccess) detailTypes.push(backupEvents.completed);
    new Rule(this, 'BackupEvents', {
      description: 'pgsnap backup outcomes to the notification topic',
      eventPattern: { source: [backupEvents.source], detailType: detailTypes },
      targets: [
        new SnsTopic(this.topic, {
          message: RuleTargetInput.fromText(
            `${EventField.detailType}: cluster ${EventField.fromPath('$.detail.cluster')}, ` +
              `backup ${EventField.fromPath('$.detail.backupId')}`,
          ),
        }),
      ],
    });

    const executionProblems = new Alarm(this, 'ExecutionsFailed', {
      alarmDescription:
        'A pgsnap backup execution failed, timed out or was aborted; see its execution history.',
      metric: props.stateMachine.metricFailed({ period: Duration.minutes(5), statistic: 'Sum' }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    executionProblems.addAlarmAction(action);
  }
}
