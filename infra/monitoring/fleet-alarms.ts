/**
 * The alarms over report-backup-age's fleet counts (domain/backup/freshness.ts
 * `fleetFreshnessMetrics`): one alarm per count, whatever the fleet's size,
 * where a per-cluster alarm over a per-cluster metric cost $0.40 a
 * cluster-month. A count without a datum is a breach: a reporter that
 * stopped (or a Lambda that cannot read) is an alarm too, not silence.
 */
import { Duration } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, Metric, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { fleetFreshnessMetrics } from '#domain/backup/freshness';
import { backupMetrics } from './metrics-and-events.ts';

/** Where a count's clusters are named: report-backup-age's `counted` line (Logs Insights), and the dashboard. */
export const countedQueryHint =
  "Which clusters: the report-backup-age log group's latest `counted` line (Logs Insights: " +
  'filter message = "counted" | sort @timestamp desc | limit 1), or the dashboard\'s freshness table.';

/** A fleet count of report-backup-age's, by its highest value over 30 minutes (the report runs every 15). */
export function fleetCount(name: string): Metric {
  return new Metric({
    namespace: backupMetrics.namespace,
    metricName: name,
    statistic: 'Maximum',
    // The report runs every 15 minutes in a 5-minute flexible window: every 30 minutes holds one.
    period: Duration.minutes(30),
  });
}

/** The alarm `id` on the count `metricName` ≥ 1, notifying `topic` when given. */
export function fleetCountAlarm(
  scope: Construct,
  id: string,
  metricName: string,
  description: string,
  topic?: ITopic,
): Alarm {
  const alarm = new Alarm(scope, id, {
    alarmDescription: `${description} ${countedQueryHint} Missing data (the report stopped) counts too.`,
    metric: fleetCount(metricName),
    threshold: 1,
    evaluationPeriods: 1,
    comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    treatMissingData: TreatMissingData.BREACHING,
  });
  if (topic) alarm.addAlarmAction(new SnsAction(topic));
  return alarm;
}

/** Which counts a reporter publishes, from what its clusters have. */
export interface FleetAlarmsOf {
  rpo: boolean;
  drills: boolean;
  archiveHealth: boolean;
}

/** The fleet alarms of one reporter (the copy-lag one is the AfterBackup construct's, copy-alarms.ts). */
export function fleetAlarms(scope: Construct, of: FleetAlarmsOf, topic?: ITopic): Alarm[] {
  const alarms: Alarm[] = [];
  if (of.rpo) {
    alarms.push(
      fleetCountAlarm(
        scope,
        'ClustersOverRpo',
        fleetFreshnessMetrics.clustersOverRpo,
        "A cluster's newest completed backup is older than its rpoHours (or it has none): its recovery point " +
          'objective is at risk. Check its schedules and its last executions (the failure events name the step).',
        topic,
      ),
      fleetCountAlarm(
        scope,
        'ClustersWithoutBackup',
        fleetFreshnessMetrics.clustersWithoutBackup,
        'A cluster has no completed backup at all: a host that was added (or tagged) but never backed up, or ' +
          'every backup of it failed. Check that its schedule exists and its first execution.',
        topic,
      ),
    );
  }
  if (of.archiveHealth) {
    alarms.push(
      fleetCountAlarm(
        scope,
        'ClustersWithoutArchiveHealth',
        fleetFreshnessMetrics.clustersWithoutArchiveHealth,
        'A database host published no archive health (ArchiveLagSeconds) for 15 minutes: the host, the agent ' +
          'service or PostgreSQL is down, or the host cannot reach CloudWatch, and nobody is watching its WAL ' +
          'archiving. Check that the instance runs, then systemctl status pgsnap-agent and journalctl -u ' +
          'pgsnap-agent (it logs why a sample failed), then that PostgreSQL accepts its connection.',
        topic,
      ),
    );
  }
  if (of.drills) {
    alarms.push(
      fleetCountAlarm(
        scope,
        'ClustersWithoutRecentDrill',
        fleetFreshnessMetrics.clustersWithoutRecentDrill,
        'No restore drill of a cluster succeeded in its drills.days: nobody knows whether its backups restore. ' +
          "Check the drill schedule, the restore state machine's last executions and the restore records " +
          '(pgsnap restores list).',
        topic,
      ),
    );
  }
  return alarms;
}
