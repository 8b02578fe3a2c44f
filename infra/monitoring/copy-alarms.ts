/**
 * What tells of DR copies, made in the AfterBackup construct: each failed
 * copy's event to the notification topic (the backup itself is completed at
 * the source when a copy fails; the event names the cluster and the backup),
 * and one alarm for the whole environment on copy lag: a copied cluster whose
 * newest backup in DR is older than its DR RPO (report-backup-age counts them
 * every 15 minutes, so a fleet of any size costs one metric and one alarm;
 * each cluster's own lag is in report-backup-age's log, on the dashboard and
 * in `pgsnap backups list --all`).
 */
import { Duration } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, Metric, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { EventField, Rule, RuleTargetInput } from 'aws-cdk-lib/aws-events';
import { SnsTopic } from 'aws-cdk-lib/aws-events-targets';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { fleetFreshnessMetrics } from '#domain/backup/freshness';
import { countedQueryHint } from './fleet-alarms.ts';
import { backupEvents, backupMetrics, copyEvents } from './metrics-and-events.ts';

/**
 * Each failed DR copy's event (copyEvents.failed) to `topic`: one rule for the fleet, where an alarm per
 * cluster over its CopyFailed metric cost $0.10 a cluster-month and said less (the event has the backup).
 */
export function copyFailedNotices(scope: Construct, topic: ITopic): Rule {
  return new Rule(scope, 'CopyFailedEvents', {
    description: 'pgsnap failed DR copies to the notification topic',
    eventPattern: { source: [backupEvents.source], detailType: [copyEvents.failed] },
    targets: [
      new SnsTopic(topic, {
        message: RuleTargetInput.fromText(
          `${EventField.detailType}: cluster ${EventField.fromPath('$.detail.cluster')}, ` +
            `backup ${EventField.fromPath('$.detail.backupId')}: ${EventField.fromPath('$.detail.error')}`,
        ),
      }),
    ],
  });
}

/** The one copy-lag alarm: some copied cluster is behind its DR RPO, or the lag was not reported for 30 minutes. */
export function copyLagAlarm(scope: Construct, topic: ITopic): Alarm {
  const alarm = new Alarm(scope, 'CopyLag', {
    alarmDescription:
      "A cluster's newest backup in DR is older than its DR RPO (dr.rpoMinutes, or rpoHours + copyHours). " +
      `${countedQueryHint} Missing data (the report stopped) counts too.`,
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
