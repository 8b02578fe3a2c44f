/**
 * The fleet bench's figures, its goals beside them (met / NOT met), and the
 * cost at list price. Prices (us-east-1, cited in bench/README.md):
 * Step Functions Standard $0.025 per 1,000 state transitions; Lambda $0.20
 * per million requests and $0.0000166667 per GB-second (x86), 256 MB × 300 ms
 * assumed per invocation as in bench/state-machine; CloudWatch custom metrics
 * $0.30 per metric-month, standard alarms $0.10 per alarm-month,
 * PutMetricData $0.01 per 1,000 requests; EventBridge custom events $1.00 per
 * million. SSM Run Command on EC2 and the EC2/Step Functions API calls are free.
 */
import { percentile } from '../lib/stats.ts';
import { columns } from '../lib/table.ts';
import type { FleetRun } from './run.ts';
import type { FleetDeployment } from './synth.ts';

export const price = {
  transition: 0.025 / 1000,
  lambdaRequest: 0.2 / 1_000_000,
  lambdaGbSecond: 0.0000166667,
  metricMonth: 0.3,
  alarmMonth: 0.1,
  /** PutMetricData and PutEvents, the dearer of the two per request. */
  metricOrEventRequest: 0.01 / 1000,
};
const lambdaGbSeconds = 0.25 * 0.3;

export interface Figures {
  clusters: number;
  completed: number;
  failedByThrottling: number;
  failedOther: number;
  throttlingAnswers: number;
  /** Throttling and quota answers met by backups that still completed. */
  throttlingAbsorbed: number;
  peakPending: number;
  peakCopies: number;
  windowP50: number;
  windowP99: number;
  backupP50: number;
  backupP99: number;
  copyLagP50: number;
  copyLagP95: number;
  copiesWithin2h: number;
  callsPerBackup: number;
  transitionsPerBackup: number;
  costPerBackup: number;
  costPerClusterMonth: number;
  peakTransitionsPerSecond: number;
  wallSeconds: number;
  virtualHours: number;
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);

export function figuresOf(run: FleetRun, deployment: FleetDeployment): Figures {
  const o = run.outcomes;
  const completed = o.filter((x) => x.status === 'completed');
  const windows = completed.flatMap((x) => (x.windowMs === undefined ? [] : [x.windowMs / 1000]));
  const backups = completed.flatMap((x) => (x.backupMs === undefined ? [] : [x.backupMs / 60_000]));
  // A copy that failed, or never started because its backup failed, has an unbounded lag.
  const lags = o.map((x) => (x.copyLagMs === undefined ? Number.POSITIVE_INFINITY : x.copyLagMs / 60_000));
  // Priced on the backups that completed: what each hour costs once every backup completes.
  const priced = completed.length > 0 ? completed : o;
  const costPerBackup = mean(
    priced.map(
      (x) =>
        x.transitions * price.transition +
        x.lambdaInvocations * (price.lambdaRequest + lambdaGbSeconds * price.lambdaGbSecond) +
        x.metricAndEventCalls * price.metricOrEventRequest,
    ),
  );
  const costPerClusterMonth =
    deployment.backupsPerMonth * costPerBackup +
    deployment.metricsPerCluster * price.metricMonth +
    (deployment.metricsPerFleet * price.metricMonth) / run.spec.clusters +
    deployment.alarmsPerCluster * price.alarmMonth +
    (deployment.alarmsPerFleet * price.alarmMonth) / run.spec.clusters;
  return {
    clusters: run.spec.clusters,
    completed: completed.length,
    failedByThrottling: o.filter((x) => x.status === 'failed' && x.byThrottling).length,
    failedOther: o.filter((x) => x.status !== 'completed' && !x.byThrottling).length,
    throttlingAnswers: [...run.refusals.values()].reduce((a, b) => a + b, 0),
    throttlingAbsorbed: completed.reduce((a, x) => a + x.throttled, 0),
    peakPending: run.peakPending,
    peakCopies: run.peakCopies,
    windowP50: percentile(windows, 0.5),
    windowP99: percentile(windows, 0.99),
    backupP50: percentile(backups, 0.5),
    backupP99: percentile(backups, 0.99),
    copyLagP50: percentile(lags, 0.5),
    copyLagP95: percentile(lags, 0.95),
    copiesWithin2h: lags.filter((lag) => lag <= 120).length / Math.max(1, lags.length),
    // Every call the fleet made, failed backups' included, per backup that completed.
    callsPerBackup: o.reduce((a, x) => a + x.calls, 0) / Math.max(1, completed.length),
    transitionsPerBackup: mean(priced.map((x) => x.transitions)),
    costPerBackup,
    costPerClusterMonth,
    peakTransitionsPerSecond: run.peakTransitionsPerSecond,
    wallSeconds: run.wallSeconds,
    virtualHours: run.virtualHours,
  };
}

const num = (x: number, digits = 1) =>
  Number.isFinite(x) ? x.toFixed(digits) : Number.isNaN(x) ? '-' : 'never';

interface Row {
  label: string;
  goal: string;
  value: (f: Figures) => string;
  met?: (f: Figures) => boolean;
}

/** The rows of the side-by-side table; `single` is the N = 1 run of the same variant, for the relative goals. */
function rows(single: Figures): Row[] {
  return [
    {
      label: 'backups completed',
      goal: 'all N',
      value: (f) => `${f.completed}/${f.clusters}`,
      met: (f) => f.completed === f.clusters,
    },
    {
      label: 'failed by throttling/quota',
      goal: '0',
      value: (f) => String(f.failedByThrottling),
      met: (f) => f.failedByThrottling === 0,
    },
    { label: 'failed otherwise', goal: '', value: (f) => String(f.failedOther) },
    {
      label: 'throttling answers (absorbed)',
      goal: '',
      value: (f) => `${f.throttlingAnswers} (${f.throttlingAbsorbed})`,
    },
    {
      label: 'peak pending snapshots',
      goal: '<= 90',
      value: (f) => String(f.peakPending),
      met: (f) => f.peakPending <= 90,
    },
    {
      label: 'peak concurrent DR copies',
      goal: '<= 20',
      value: (f) => String(f.peakCopies),
      met: (f) => f.peakCopies <= 20,
    },
    { label: 'backup-mode window p50 (s)', goal: '', value: (f) => num(f.windowP50) },
    {
      label: 'backup-mode window p99 (s)',
      goal: `<= ${num(2 * single.windowP99)}`,
      value: (f) => num(f.windowP99),
      met: (f) => f.windowP99 <= 2 * single.windowP99,
    },
    { label: 'whole backup p50 (min)', goal: '', value: (f) => num(f.backupP50) },
    { label: 'whole backup p99 (min)', goal: '', value: (f) => num(f.backupP99) },
    { label: 'DR copy lag p50 (min)', goal: '', value: (f) => num(f.copyLagP50) },
    {
      label: 'DR copy lag p95 (min)',
      goal: '<= 120',
      value: (f) => num(f.copyLagP95),
      met: (f) => f.copiesWithin2h >= 0.95,
    },
    { label: 'DR copies within 2 h', goal: '>= 95 %', value: (f) => `${num(f.copiesWithin2h * 100)} %` },
    {
      label: 'API calls per completed backup',
      goal: `<= ${num(1.25 * single.callsPerBackup)}`,
      value: (f) => num(f.callsPerBackup),
      met: (f) => f.callsPerBackup <= 1.25 * single.callsPerBackup,
    },
    { label: 'transitions per completed backup', goal: '', value: (f) => num(f.transitionsPerBackup) },
    { label: 'peak transitions per second', goal: '', value: (f) => String(f.peakTransitionsPerSecond) },
    { label: 'cost per completed backup ($)', goal: '', value: (f) => f.costPerBackup.toFixed(5) },
    {
      label: 'cost per cluster-month ($)',
      goal: '<= 1.50',
      value: (f) => f.costPerClusterMonth.toFixed(2),
      met: (f) => f.costPerClusterMonth <= 1.5,
    },
    {
      label: 'simulated h / wall s',
      goal: '',
      value: (f) => `${num(f.virtualHours, 2)}/${num(f.wallSeconds)}`,
    },
  ];
}

const verdict = (row: Row, f: Figures) => (row.met ? (row.met(f) ? 'met' : 'NOT met') : '');

/** One N's table: the goal, then the figures and verdicts with the window off and on. */
export function sideBySide(off: Figures, on: Figures, singleOff: Figures, singleOn: Figures): string[] {
  const widths = [31, 10, 11, 8, 11, 8];
  const header = columns(widths, ['', 'goal', 'window off', '', 'window on', '']);
  const lines = [`N = ${off.clusters} clusters (${off.clusters * 3} volumes)`, header];
  const offRows = rows(singleOff);
  const onRows = rows(singleOn);
  for (const [i, row] of offRows.entries()) {
    const onRow = onRows[i]!;
    const goal = row.goal === onRow.goal ? row.goal : `${row.goal}|${onRow.goal.replace(/^<= /, '')}`;
    lines.push(
      columns(widths, [
        row.label,
        goal,
        row.value(off),
        verdict(row, off),
        onRow.value(on),
        verdict(onRow, on),
      ]),
    );
  }
  return lines;
}
