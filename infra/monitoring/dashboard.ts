/**
 * The operator's CloudWatch dashboard, the same size for 2 clusters or 500:
 * the fleet on top (the alarms' states, backups completed and failed, the
 * state machine's execution times), then rows of the clusters that need a look
 * first, each a CloudWatch Metrics Insights query over every cluster's metric
 * (`SELECT MAX(ArchiveLagSeconds) FROM SCHEMA("pgsnap/hosts", Cluster) GROUP BY
 * Cluster ORDER BY MAX() DESC LIMIT 10`): the oldest newest backups, the most
 * failures, the longest archive lag, the least pg_wal free space, the drills.
 * A widget per cluster made the dashboard (and its body, 1 MB at most) grow
 * with the fleet; a cluster's own figures are in `pgsnap backups list --all`
 * and the console's metrics. Only metrics something emits: the state machines'
 * counters, record-backup's fleet-wide durations (domain/backup/durations.ts),
 * report-backup-age's fleet counts (domain/backup/freshness.ts), Step
 * Functions' own metrics, and the agent's archive health
 * (domain/host-metrics.ts). Each cluster's ages are no metric (a metric per
 * cluster is $0.30 a month): a Logs Insights table over report-backup-age's
 * `freshness` lines shows the oldest.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import {
  Alarm,
  AlarmStatusWidget,
  Dashboard,
  GraphWidget,
  LogQueryVisualizationType,
  LogQueryWidget,
  MathExpression,
  Metric,
  TextWidget,
} from 'aws-cdk-lib/aws-cloudwatch';
import type { ILogGroup } from 'aws-cdk-lib/aws-logs';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct, type IConstruct } from 'constructs';
import { fleetFreshnessMetrics } from '#domain/backup/freshness';
import { fleetHostMetrics } from '#domain/host-metrics';
import { restoreMetrics } from '#domain/restore/steps';
import type { EnvironmentConfig } from '../config/config.ts';
import { backupDurationMetrics, backupMetrics, copyMetrics, hostMetrics } from './metrics-and-events.ts';

export interface PgsnapDashboardProps {
  config: EnvironmentConfig;
  stateMachine: IStateMachine;
  /** Where the alarms are: every Alarm under it is on the fleet's status widget (up to the widget's 100). */
  alarmsUnder: IConstruct;
  /** Whether DR copies are made (their failures and ages are shown). */
  copiesToDr: boolean;
  /** report-backup-age's log group: each cluster's ages, one `freshness` line per cluster and run. */
  freshnessLog?: ILogGroup;
}

const width = 24;

/** The most clusters a "look first" widget lists. */
export const topClusters = 10;

/** CloudWatch's alarm status widget shows at most 100 alarms. */
const alarmWidgetLimit = 100;

/**
 * A Metrics Insights query over every cluster's `metric` in `namespace`: the `top` clusters by
 * `fn`, highest first (`order: 'ASC'`: lowest first), one line each.
 */
export function fleetQuery(
  namespace: string,
  metric: string,
  fn: 'MAX' | 'MIN' | 'SUM',
  order: 'DESC' | 'ASC' = 'DESC',
  top = topClusters,
): string {
  const dimension = backupMetrics.dimension;
  return (
    `SELECT ${fn}(${metric}) FROM SCHEMA("${namespace}", ${dimension}) ` +
    `GROUP BY ${dimension} ORDER BY ${fn}() ${order} LIMIT ${top}`
  );
}

function queryWidget(
  title: string,
  query: string,
  options: { period?: Duration; label?: string; width?: number } = {},
): GraphWidget {
  return new GraphWidget({
    title,
    left: [
      new MathExpression({
        expression: query,
        usingMetrics: {},
        period: options.period ?? Duration.minutes(5),
        // A query grouped by cluster: each line is labelled with its cluster (CloudWatch's dynamic label).
        // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudWatch's dynamic label, not a template
        label: options.label ?? '${LABEL}',
      }),
    ],
    leftYAxis: { min: 0, showUnits: false },
    width: options.width ?? 6,
    height: 6,
  });
}

/** A fleet-wide metric (no cluster dimension) of `namespace` (the state machine's by default). */
function fleetMetric(
  name: string,
  statistic: string,
  label: string,
  period = Duration.hours(1),
  namespace: string = backupMetrics.namespace,
) {
  return new Metric({ namespace, metricName: name, statistic, period, label });
}

/**
 * The clusters with the oldest `field` in report-backup-age's latest `freshness` line of each, highest
 * first: the ages it logs instead of publishing a metric per cluster.
 */
export function freshnessQuery(field: string): string {
  return (
    `filter message = "freshness" | stats latest(${field}) as newest by cluster ` +
    `| sort newest desc | limit ${topClusters}`
  );
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
    const pgsnap = backupMetrics.namespace;
    const hosts = hostMetrics.namespace;

    this.dashboard.addWidgets(
      new TextWidget({
        markdown:
          `# pgsnap ${config.name}\nBackups of ${config.clusters.length} cluster(s) in ${Stack.of(this).region}. ` +
          `Each graph below lists the ${topClusters} clusters to look at first; \`pgsnap backups list --all\` ` +
          "shows every cluster's newest backup, DR lag and last drill. Each alarm's description says what to check first.",
        width,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      new AlarmStatusWidget({
        title:
          alarms.length > alarmWidgetLimit
            ? `Alarms (the first ${alarmWidgetLimit} of ${alarms.length}; the console's alarm list has every one)`
            : 'Every alarm',
        alarms: alarms.slice(0, alarmWidgetLimit),
        width,
        height: Math.min(8, 2 + Math.ceil(Math.min(alarms.length, alarmWidgetLimit) / 4)),
      }),
    );
    const day = Duration.days(1);
    this.dashboard.addWidgets(
      // The state machine counts completed and failed backups for the fleet (no Cluster dimension): the
      // failure events name each cluster, and `pgsnap backups list --all` shows each one's newest backup.
      new GraphWidget({
        title: 'Backups per day, all clusters',
        left: [
          fleetMetric(backupMetrics.completed, 'Sum', 'completed', day),
          fleetMetric(backupMetrics.failed, 'Sum', 'failed', day),
        ],
        leftYAxis: { min: 0, showUnits: false },
        width: 16,
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
    // report-backup-age logs each cluster's ages every 15 minutes (CloudWatch cannot tell a datapoint's age),
    // and counts the clusters over their objectives: the counts are the alarms' metrics.
    const ages = (title: string, field: string) =>
      props.freshnessLog
        ? [
            new LogQueryWidget({
              title,
              logGroupNames: [props.freshnessLog.logGroupName],
              queryString: freshnessQuery(field),
              view: LogQueryVisualizationType.TABLE,
              width: 6,
              height: 6,
            }),
          ]
        : [];
    const counts = Object.values(fleetFreshnessMetrics)
      .filter((name) => props.copiesToDr || name !== fleetFreshnessMetrics.clustersBehindDrRpo)
      .map((name) => fleetMetric(name, 'Maximum', name, Duration.minutes(15)));
    this.dashboard.addWidgets(
      new GraphWidget({
        title: "Clusters over their objectives (the alarms' counts)",
        left: counts,
        leftYAxis: { min: 0, showUnits: false },
        width: 6,
        height: 6,
      }),
      ...ages('Newest completed backup, seconds ago: the oldest', 'backupAgeSeconds'),
      ...(props.copiesToDr
        ? [
            ...ages('Newest backup in DR, seconds ago: the oldest', 'drCopyAgeSeconds'),
            new GraphWidget({
              title: "DR copies failed, all clusters (each one's event names it)",
              left: [fleetMetric(copyMetrics.failed, 'Sum', 'failed copies')],
              leftYAxis: { min: 0, showUnits: false },
              width: 6,
              height: 6,
            }),
          ]
        : []),
      // One datapoint per completed backup, for the whole fleet (record-backup publishes them).
      new GraphWidget({
        title: 'Durations of completed backups (all clusters)',
        left: [
          fleetMetric(backupDurationMetrics.backupMode, 'Maximum', 'in backup mode (longest)'),
          fleetMetric(backupDurationMetrics.backupMode, 'p50', 'in backup mode (median)'),
          fleetMetric(backupDurationMetrics.snapshots, 'Maximum', 'snapshots completing (longest)'),
          fleetMetric(backupDurationMetrics.backup, 'Maximum', 'whole backup (longest)'),
        ],
        leftYAxis: { min: 0, showUnits: false, label: 's' },
        width: 6,
        height: 6,
      }),
    );
    this.dashboard.addWidgets(
      queryWidget('WAL archive lag, seconds: the longest', fleetQuery(hosts, hostMetrics.archiveLag, 'MAX')),
      new GraphWidget({
        title: 'WAL files waiting, all hosts (pgsnap doctor on a host has its own)',
        left: [
          fleetMetric(
            fleetHostMetrics.readyFiles,
            'Maximum',
            'the most on one host',
            Duration.minutes(5),
            hosts,
          ),
          fleetMetric(
            fleetHostMetrics.pusherBacklog,
            'Maximum',
            'async pusher backlog',
            Duration.minutes(5),
            hosts,
          ),
        ],
        leftYAxis: { min: 0, showUnits: false },
        width: 6,
        height: 6,
      }),
      queryWidget(
        'pg_wal free bytes: the least',
        fleetQuery(hosts, hostMetrics.walVolumeFreeBytes, 'MIN', 'ASC'),
      ),
      new GraphWidget({
        title: 'WAL archive failures, all hosts',
        left: [
          fleetMetric(
            fleetHostMetrics.archiveFailures,
            'Sum',
            'failed archive_command runs',
            Duration.minutes(5),
            hosts,
          ),
        ],
        leftYAxis: { min: 0, showUnits: false },
        width: 6,
        height: 6,
      }),
    );
    // The restore state machine counts each outcome; the record of each (phases, RTO) is in the repository.
    this.dashboard.addWidgets(
      ...ages('Days since the last drill: the longest', 'daysSinceDrill'),
      queryWidget(
        'Drills failed per day: the clusters with most',
        fleetQuery(pgsnap, restoreMetrics.drillFailed, 'SUM'),
        {
          period: day,
        },
      ),
      queryWidget(
        'Drill RTO, seconds: the slowest',
        fleetQuery(pgsnap, restoreMetrics.drillRtoSeconds, 'MAX'),
        {
          period: day,
        },
      ),
      queryWidget(
        'Restores failed per day: the clusters with most',
        fleetQuery(pgsnap, restoreMetrics.restoreFailed, 'SUM'),
        { period: day },
      ),
    );
  }
}
