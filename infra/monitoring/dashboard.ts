/**
 * The operator's CloudWatch dashboard: the fleet on top (every alarm's state,
 * backups completed and failed, the state machine's execution times), then a
 * row per cluster (how old its newest backup is, at the source and in DR;
 * backups against its RPO, the durations of completed backups, WAL archive
 * lag and ready files, pg_wal's free space, DR copies, restores and drills and
 * their RTO). Only metrics something emits: the state machines' counters,
 * record-backup's durations (infra/monitoring/metrics-and-events.ts), report-backup-age's
 * ages (domain/backup/freshness.ts), Step Functions' own metrics, and the
 * agent's archive health (domain/host-metrics.ts).
 */
import { Duration, Stack } from 'aws-cdk-lib';
import {
  Alarm,
  AlarmStatusWidget,
  Dashboard,
  GraphWidget,
  type HorizontalAnnotation,
  MathExpression,
  SingleValueWidget,
  TextWidget,
} from 'aws-cdk-lib/aws-cloudwatch';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct, type IConstruct } from 'constructs';
import { freshnessMetrics } from '#domain/backup/freshness';
import { restoreMetrics } from '#domain/restore/steps';
import type { EnvironmentConfig } from '../config/config.ts';
import { clusterMetric, hostMetric } from './archive-alarms.ts';
import { backupDurationMetrics, backupMetrics, copyMetrics, hostMetrics } from './metrics-and-events.ts';

export interface PgsnapDashboardProps {
  config: EnvironmentConfig;
  stateMachine: IStateMachine;
  /** Where the alarms are: every Alarm under it is on the fleet's status widget. */
  alarmsUnder: IConstruct;
  /** Whether DR copies are made (their failures are counted). */
  copiesToDr: boolean;
}

const width = 24;

function backupMetric(cluster: string, name: string, period: Duration, label: string, statistic = 'Sum') {
  return clusterMetric(cluster, name, statistic, period).with({ label });
}

export class PgsnapDashboard extends Construct {
  readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: PgsnapDashboardProps) {
    super(scope, id);
    const { config } = props;
    this.dashboard = new Dashboard(this, 'Dashboard', {
      dashboardName: `pgsnap-${config.name}`,
      defaultInterval: Duration.days(7),
    });
    const alarms = props.alarmsUnder.node.findAll().filter((c): c is Alarm => c instanceof Alarm);
    const day = Duration.days(1);

    this.dashboard.addWidgets(
      new TextWidget({
        markdown:
          `# pgsnap ${config.name}\nBackups of ${config.clusters.length} cluster(s) in ${Stack.of(this).region}. ` +
          "Each alarm's description says what to check first; the README's Monitoring section says more.",
        width,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      new AlarmStatusWidget({
        title: 'Every alarm',
        alarms,
        width,
        height: Math.min(8, 2 + Math.ceil(alarms.length / 4)),
      }),
    );
    this.dashboard.addWidgets(
      new SingleValueWidget({
        title: 'Backups completed, last 24 hours',
        metrics: config.clusters.map((c) => backupMetric(c.name, backupMetrics.completed, day, c.name)),
        period: day,
        width: 8,
        height: 4,
      }),
      new SingleValueWidget({
        title: 'Backups failed, last 24 hours',
        metrics: config.clusters.map((c) => backupMetric(c.name, backupMetrics.failed, day, c.name)),
        period: day,
        width: 8,
        height: 4,
      }),
      new GraphWidget({
        title: 'Backup executions: duration (all clusters)',
        left: [
          props.stateMachine.metricTime({
            statistic: 'Average',
            period: Duration.hours(1),
            label: 'average',
          }),
          props.stateMachine.metricTime({
            statistic: 'Maximum',
            period: Duration.hours(1),
            label: 'longest',
          }),
        ],
        leftYAxis: { label: 'ms', showUnits: false, min: 0 },
        width: 8,
        height: 4,
      }),
    );

    for (const cluster of config.clusters) {
      const name = cluster.name;
      this.dashboard.addWidgets(
        new TextWidget({
          markdown:
            `## ${name}\nRPO: a completed backup every ${cluster.rpoHours} h; WAL archived within ` +
            `${cluster.walRpoMinutes} min; alarm under ${cluster.walMinFreeMiB} MiB free in pg_wal.`,
          width,
          height: 2,
        }),
      );
      const backups = new GraphWidget({
        title: `${name}: backups per hour (RPO ${cluster.rpoHours} h without one)`,
        left: [
          backupMetric(name, backupMetrics.completed, Duration.hours(1), 'completed'),
          backupMetric(name, backupMetrics.failed, Duration.hours(1), 'failed'),
          ...(props.copiesToDr && cluster.copyToDr
            ? [backupMetric(name, copyMetrics.failed, Duration.hours(1), 'DR copy failed')]
            : []),
        ],
        leftYAxis: { min: 0, showUnits: false },
        width: 6,
        height: 6,
      });
      // One datapoint per completed backup (record-backup publishes them).
      const durations = new GraphWidget({
        title: `${name}: durations of completed backups`,
        left: [
          backupMetric(
            name,
            backupDurationMetrics.backupMode,
            Duration.hours(1),
            'in backup mode',
            'Maximum',
          ),
          backupMetric(
            name,
            backupDurationMetrics.snapshots,
            Duration.hours(1),
            'snapshots completing',
            'Maximum',
          ),
          backupMetric(name, backupDurationMetrics.backup, Duration.hours(1), 'whole backup', 'Maximum'),
        ],
        leftYAxis: { min: 0, showUnits: false, label: 's' },
        width: 6,
        height: 6,
      });
      const lagThreshold: HorizontalAnnotation = {
        value: cluster.walRpoMinutes * 60,
        label: 'archiving stalled',
      };
      const lag = new GraphWidget({
        title: `${name}: WAL archive lag`,
        left: [hostMetric(name, hostMetrics.archiveLag, 'Maximum').with({ label: 'lag (s)' })],
        leftAnnotations: [lagThreshold],
        leftYAxis: { min: 0, showUnits: false, label: 's' },
        width: 4,
        height: 6,
      });
      const ready = new GraphWidget({
        title: `${name}: WAL files waiting`,
        left: [
          hostMetric(name, hostMetrics.readyFiles, 'Maximum').with({ label: 'ready files' }),
          hostMetric(name, hostMetrics.pusherBacklog, 'Maximum').with({ label: 'async pusher backlog' }),
        ],
        right: [hostMetric(name, hostMetrics.archiveFailures, 'Sum').with({ label: 'archive failures' })],
        leftYAxis: { min: 0, showUnits: false },
        rightYAxis: { min: 0, showUnits: false },
        width: 4,
        height: 6,
      });
      const free = new GraphWidget({
        title: `${name}: pg_wal free space`,
        left: [hostMetric(name, hostMetrics.walVolumeFreeBytes, 'Minimum').with({ label: 'free bytes' })],
        leftAnnotations: [{ value: cluster.walMinFreeMiB * 1024 * 1024, label: 'pg_wal filling' }],
        leftYAxis: { min: 0 },
        width: 4,
        height: 6,
      });
      // The restore state machine counts each outcome; the record of each (phases, RTO) is in the repository.
      const restores = new GraphWidget({
        title: `${name}: restores and drills per day`,
        left: [
          backupMetric(name, restoreMetrics.drillSucceeded, Duration.days(1), 'drill passed'),
          backupMetric(name, restoreMetrics.drillFailed, Duration.days(1), 'drill failed'),
          backupMetric(name, restoreMetrics.restoreSucceeded, Duration.days(1), 'restore passed'),
          backupMetric(name, restoreMetrics.restoreFailed, Duration.days(1), 'restore failed'),
        ],
        leftYAxis: { min: 0, showUnits: false },
        width: 6,
        height: 6,
      });
      const rto = new GraphWidget({
        title: `${name}: RTO (request to accepting connections)`,
        left: [
          backupMetric(name, restoreMetrics.drillRtoSeconds, Duration.days(1), 'drill', 'Maximum'),
          backupMetric(name, restoreMetrics.restoreRtoSeconds, Duration.days(1), 'restore', 'Maximum'),
        ],
        ...(cluster.drills?.rtoMinutes
          ? { leftAnnotations: [{ value: cluster.drills.rtoMinutes * 60, label: 'RTO objective' }] }
          : {}),
        leftYAxis: { min: 0, label: 'seconds', showUnits: false },
        width: 6,
        height: 6,
      });
      // CloudWatch cannot tell how long ago a datapoint was: report-backup-age puts the age itself.
      const hoursAgo = (metric: string, label: string, id: string) =>
        new MathExpression({
          expression: `${id} / 3600`,
          usingMetrics: { [id]: backupMetric(name, metric, Duration.minutes(15), label, 'Maximum') },
          label,
          period: Duration.minutes(15),
        });
      const age = new SingleValueWidget({
        title: `${name}: newest completed backup, hours ago`,
        metrics: [
          hoursAgo(freshnessMetrics.backupAge, 'at the source', 'source'),
          ...(props.copiesToDr && cluster.copyToDr
            ? [hoursAgo(freshnessMetrics.drCopyAge, 'in DR', 'dr')]
            : []),
        ],
        width: 4,
        height: 6,
      });
      this.dashboard.addWidgets(age, backups, durations, lag, ready, free, restores, rto);
    }
  }
}
