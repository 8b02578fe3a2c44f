/**
 * Telling people: an SNS topic (email subscriptions from the configuration),
 * the failure (and optionally completion) events forwarded to it, and per
 * cluster an alarm for a failed backup and the RPO alarm, "no completed backup
 * of this cluster in N hours".
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
import { clusterMetric } from './archive-alarms.ts';
import { backupEvents, backupMetrics } from './metrics-and-events.ts';

export interface BackupAlarmsProps {
  clusters: ClusterConfig[];
  notifications: EnvironmentConfig['notifications'];
  stateMachine: IStateMachine;
  /** Where a cluster's alarms go (infra/guards/cluster-shards.ts); none: here. */
  scopeOf?: ((cluster: string, here: Construct) => Construct) | undefined;
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

    for (const cluster of props.clusters) {
      const scope = props.scopeOf?.(cluster.name, this) ?? this;
      const metric = (metricName: string, period: Duration) =>
        clusterMetric(cluster.name, metricName, 'Sum', period);
      new Alarm(scope, `${cluster.name}-BackupFailed`, {
        alarmDescription: `A backup of ${cluster.name} failed; the failure event and the execution history say why.`,
        metric: metric(backupMetrics.failed, Duration.minutes(5)),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }).addAlarmAction(action);
      // One datapoint per hour; the alarm fires when none of the last rpoHours had a completed backup.
      new Alarm(scope, `${cluster.name}-Rpo`, {
        alarmDescription:
          `No backup of ${cluster.name} completed in ${cluster.rpoHours} hours: ` +
          'the recovery point objective is at risk. Check the schedules and the last executions.',
        metric: metric(backupMetrics.completed, Duration.hours(1)),
        threshold: 1,
        evaluationPeriods: cluster.rpoHours,
        datapointsToAlarm: cluster.rpoHours,
        comparisonOperator: ComparisonOperator.LESS_THAN_THRESHOLD,
        treatMissingData: TreatMissingData.BREACHING,
      }).addAlarmAction(action);
    }
  }
}
