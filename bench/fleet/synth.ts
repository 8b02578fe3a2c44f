/**
 * What the fleet bench runs and prices, read from the CDK app at run time:
 * the backup state machine's definition (with its DR copy steps), the
 * settings its Lambdas are deployed with, the schedules' flexible window, and
 * the alarms and metrics each cluster adds. Synthesized for one and for two
 * clusters: what the second adds is what every further cluster adds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { backupDurationMetrics } from '#domain/backup/durations';
import { fleetFreshnessMetrics } from '#domain/backup/freshness';
import { fleetHostMetrics, hostMetrics } from '#domain/host-metrics';
import { type EnvironmentInput, environmentSchema } from '../../infra/config/config.ts';
import { DrStack } from '../../infra/dr-stack.ts';
import { type Asl, stateMachineDefinition } from '../../infra/local-run/synthesize.ts';
import { backupMetrics, copyMetrics } from '../../infra/monitoring/metrics-and-events.ts';
import { PgsnapStack } from '../../infra/pgsnap-stack.ts';

type Template = { Resources: Record<string, { Type: string; Properties: Record<string, unknown> }> };

export const fleetAccount = '111122223333';
export const fleetRegion = 'eu-west-1';
export const drAccount = '444455556666';
export const drRegion = 'us-west-2';

/** The cluster the bench synthesizes for; the fleet's clusters are like it. */
export function benchCluster(index: number): EnvironmentInput['clusters'][number] {
  return {
    name: `db-${String(index).padStart(4, '0')}`,
    instance: { instanceId: `i-${index.toString(16).padStart(17, '0')}` },
    volumeIds: [0, 1, 2].map((v) => `vol-${(index * 4 + v + 1).toString(16).padStart(17, '0')}`),
    repository: { prefix: 'pgsnap/' },
    schedules: [{ name: 'hourly', expression: 'rate(1 hour)' }],
    fastCheckpoint: true,
    retention: { keepLast: 24, dr: { keepDays: 7 } },
  };
}

function environment(clusters: number): EnvironmentInput {
  return {
    name: 'fleet',
    account: fleetAccount,
    region: fleetRegion,
    clusters: Array.from({ length: clusters }, (_, i) => benchCluster(i)),
    dr: { account: drAccount, region: drRegion, externalId: 'pgsnap-fleet-7f3a9c2e' },
  };
}

function synthesize(clusters: number): { source: Template; dr: Template } {
  const outdir = mkdtempSync(join(tmpdir(), 'pgsnap-fleet-cdk-'));
  try {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] }, outdir });
    const parsed = environmentSchema.parse(environment(clusters));
    const source = new PgsnapStack(app, 'pgsnap-fleet', { environment: parsed });
    const dr = new DrStack(app, 'pgsnap-fleet-dr', { environment: parsed });
    const assembly = app.synth();
    return {
      source: assembly.getStackByName(source.stackName).template as Template,
      dr: assembly.getStackByName(dr.stackName).template as Template,
    };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

const ofType = (template: Template, type: string) =>
  Object.values(template.Resources).filter((r) => r.Type === type);

export interface FleetDeployment {
  definition: Asl;
  /** The plain-string PGSNAP_* settings of the backup Lambdas (poll intervals, timeouts). */
  lambdaSettings: Record<string, string>;
  /** The schedules' flexible window in minutes, when they have one. */
  flexibleWindowMinutes?: number;
  /** Alarms every cluster adds, and those the fleet has once (both stacks). */
  alarmsPerCluster: number;
  alarmsPerFleet: number;
  /** Custom metrics (name × Cluster dimension) each cluster publishes all month (every sample or backup). */
  metricsPerCluster: number;
  /**
   * Custom metrics with the Cluster dimension published only when something fails (BackupFailed,
   * CopyFailed): CloudWatch bills a metric by the hours it receives data, so they cost nothing while
   * nothing fails (listed, not priced).
   */
  failureMetricsPerCluster: string[];
  /** Custom metrics without the Cluster dimension, once per fleet (durations, fleet counts, hosts' counts). */
  metricsPerFleet: number;
  /** Metrics report-backup-age asks GetMetricData for per cluster and month (the hosts' archive lag). */
  metricsRequestedPerCluster: number;
  /** Each Lambda's memory, MiB, by the function named in the definition's Task resources. */
  lambdaMemoryMiB: Record<string, number>;
  /** Backups per cluster per month from its schedules (730 h a month). */
  backupsPerMonth: number;
}

/** The metrics the definition puts, each with whether it carries a dimension (the Cluster). */
function metricsInDefinition(definition: Asl): Map<string, boolean> {
  const metrics = new Map<string, boolean>();
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const item of node) visit(item);
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    const record = node as Record<string, unknown>;
    if (typeof record.MetricName === 'string') {
      metrics.set(
        record.MetricName,
        (metrics.get(record.MetricName) ?? false) || record.Dimensions !== undefined,
      );
    }
    for (const value of Object.values(record)) visit(value);
  };
  visit(definition);
  return metrics;
}

export function synthesizeFleet(): FleetDeployment {
  const one = synthesize(1);
  const two = synthesize(2);
  const alarms = (t: { source: Template; dr: Template }) =>
    ofType(t.source, 'AWS::CloudWatch::Alarm').length + ofType(t.dr, 'AWS::CloudWatch::Alarm').length;
  const alarmsPerCluster = alarms(two) - alarms(one);
  const definition = stateMachineDefinition(one.source, fleetAccount, fleetRegion, 'backup');
  const lambdaSettings: Record<string, string> = {};
  const lambdaMemoryMiB: Record<string, number> = {};
  for (const [id, fn] of Object.entries(one.source.Resources)) {
    if (fn.Type !== 'AWS::Lambda::Function') continue;
    lambdaMemoryMiB[id] = Number(fn.Properties.MemorySize ?? 128);
    const variables = (fn.Properties.Environment as { Variables?: Record<string, unknown> } | undefined)
      ?.Variables;
    for (const [key, value] of Object.entries(variables ?? {})) {
      const setting =
        /^PGSNAP_.*_(SECONDS|HOURS|MINUTES)$/.test(key) ||
        /^PGSNAP_(COPIES|PENDING_SNAPSHOTS)_(KEY|BUDGET)$|^PGSNAP_UNLISTED_VOLUMES$/.test(key);
      if (setting && typeof value === 'string') lambdaSettings[key] = value;
    }
  }
  const windows = ofType(one.source, 'AWS::Scheduler::Schedule')
    .map(
      (s) =>
        s.Properties.FlexibleTimeWindow as { Mode?: string; MaximumWindowInMinutes?: number } | undefined,
    )
    .filter((w) => w?.Mode === 'FLEXIBLE' && w.MaximumWindowInMinutes)
    .map((w) => w!.MaximumWindowInMinutes!);
  const onFailure: string[] = [backupMetrics.failed, copyMetrics.failed];
  const inDefinition = metricsInDefinition(definition);
  const perCluster = [...inDefinition].filter(([, dimensioned]) => dimensioned).map(([name]) => name);
  const perFleet = [...inDefinition].filter(([, dimensioned]) => !dimensioned).map(([name]) => name);
  // The host's two with the Cluster dimension (domain/host-metrics.ts), and the state machine's own.
  const published = new Set<string>([
    hostMetrics.archiveLag,
    hostMetrics.walVolumeFreeBytes,
    ...perCluster.filter((name) => !onFailure.includes(name)),
  ]);
  return {
    definition,
    lambdaSettings,
    ...(windows.length > 0 ? { flexibleWindowMinutes: Math.max(...windows) } : {}),
    alarmsPerCluster,
    alarmsPerFleet: alarms(one) - alarmsPerCluster,
    metricsPerCluster: published.size,
    failureMetricsPerCluster: perCluster.filter((name) => onFailure.includes(name)),
    // Published without the Cluster dimension: the fleet's, not each cluster's.
    metricsPerFleet:
      perFleet.length +
      Object.values(backupDurationMetrics).length +
      Object.values(fleetFreshnessMetrics).length +
      Object.values(fleetHostMetrics).length,
    // One SampleCount per cluster per run, every 15 minutes (domain/host-metrics.ts clustersWithArchiveHealth).
    metricsRequestedPerCluster: 4 * 730,
    lambdaMemoryMiB,
    backupsPerMonth: 730,
  };
}
