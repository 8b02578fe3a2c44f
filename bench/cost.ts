/**
 * bench/cost: what orchestration and monitoring cost per cluster-month at list
 * price, from the synthesized stacks alone (no run): the backup state
 * machine's states a completed backup passes (the longest path of its
 * definition that does not end in a Fail state, each poll loop passed once),
 * the Lambdas among them and their memory, the custom metrics each cluster
 * publishes with the Cluster dimension all month (those published only when
 * something fails are billed by the hour they arrive: listed, not priced) and
 * those the fleet publishes once, the archive lag report-backup-age reads, and
 * the alarms every further cluster adds (synthesized for one and two clusters).
 * Prices as bench/fleet/report.ts (us-east-1). bench/fleet measures the
 * transitions of real runs, polls and retries included; this is the floor.
 *
 * usage: npx tsx bench/cost.ts [clusters=500]
 */
import type { Asl } from '../infra/local-run/synthesize.ts';
import { price } from './fleet/report.ts';
import { synthesizeFleet } from './fleet/synth.ts';

type State = {
  Type: string;
  Next?: string;
  Default?: string;
  End?: boolean;
  Resource?: string;
  Choices?: Array<{ Next: string }>;
  Branches?: Asl[];
  Iterator?: Asl;
  ItemProcessor?: Asl;
};

/** The states on the longest path from StartAt that ends in success, each visited once. */
export function successPath(definition: Asl): string[] {
  const states = definition.States as Record<string, State>;
  const memo = new Map<string, string[] | null>();
  const walk = (name: string, seen: Set<string>): string[] | null => {
    if (seen.has(name)) return null;
    if (memo.has(name)) return memo.get(name)!;
    const state = states[name];
    if (!state || state.Type === 'Fail') return null;
    const nested = [
      ...(state.Branches ?? []),
      ...[state.Iterator, state.ItemProcessor].filter((x) => !!x),
    ].flatMap((branch) => successPath(branch as Asl));
    const nexts = [state.Next, state.Default, ...(state.Choices ?? []).map((c) => c.Next)].filter(
      (n): n is string => !!n,
    );
    const here = [name, ...nested];
    let best: string[] | null = state.End || state.Type === 'Succeed' ? here : null;
    for (const next of nexts) {
      const rest = walk(next, new Set([...seen, name]));
      if (rest && (!best || here.length + rest.length > best.length)) best = [...here, ...rest];
    }
    memo.set(name, best);
    return best;
  };
  return walk(definition.StartAt as string, new Set()) ?? [];
}

const clusters = Number(process.argv[2] ?? 500);
const deployment = synthesizeFleet();
const path = successPath(deployment.definition);
const states = deployment.definition.States as Record<string, State>;
const lambdas = path.filter((n) => states[n]?.Resource?.startsWith('arn:aws:lambda:'));
const memoryOf = (arn: string) => {
  const id = Object.keys(deployment.lambdaMemoryMiB).find((k) => arn.endsWith(`:${k}`));
  return (id ? deployment.lambdaMemoryMiB[id]! : 128) / 1024;
};
/** As bench/state-machine and bench/fleet: 300 ms per invocation. */
const invocationSeconds = 0.3;
const gbSeconds = lambdas.reduce((sum, n) => sum + memoryOf(states[n]!.Resource!) * invocationSeconds, 0);
// A Lambda state is one transition and the execution's start one more.
const transitions = path.length + 1;
const perBackup =
  transitions * price.transition +
  lambdas.length * price.lambdaRequest +
  gbSeconds * price.lambdaGbSecond +
  // BackupCompleted and the durations: one PutMetricData each, one completion event.
  3 * price.metricOrEventRequest;
/** GetMetricData: $0.01 per 1,000 metrics requested. */
const metricRequested = 0.01 / 1000;
const monitoring =
  deployment.metricsPerCluster * price.metricMonth +
  deployment.metricsRequestedPerCluster * metricRequested +
  (deployment.metricsPerFleet * price.metricMonth) / clusters +
  deployment.alarmsPerCluster * price.alarmMonth +
  (deployment.alarmsPerFleet * price.alarmMonth) / clusters;
const dollars = (x: number) => `$${x.toFixed(2)}`;
const lines = [
  `bench/cost: per cluster-month at list price (us-east-1), a fleet of ${clusters}, from the synthesized stacks`,
  `  a completed backup: ${transitions} state transitions (the longest success path, each poll once), ` +
    `${lambdas.length} Lambda invocations, ${gbSeconds.toFixed(3)} GB-s: $${perBackup.toFixed(5)}`,
  `  monitoring: ${deployment.metricsPerCluster} custom metrics per cluster (${dollars(deployment.metricsPerCluster * price.metricMonth)}), ` +
    `${deployment.metricsPerFleet} per fleet${deployment.failureMetricsPerCluster.length > 0 ? `, ${deployment.failureMetricsPerCluster.join(' and ')} only while failing` : ''}; ` +
    `${deployment.metricsRequestedPerCluster} metrics read (${dollars(deployment.metricsRequestedPerCluster * metricRequested)}); ` +
    `${deployment.alarmsPerCluster} alarms per cluster ` +
    `(${dollars(deployment.alarmsPerCluster * price.alarmMonth)}), ${deployment.alarmsPerFleet} per fleet: ${dollars(monitoring)}`,
];
for (const [cadence, backups] of [
  ['hourly', 730],
  ['every 4 hours', 183],
  ['daily', 30],
] as const) {
  const orchestration = backups * perBackup;
  lines.push(
    `  ${cadence.padEnd(13)} ${String(backups).padStart(3)} backups: orchestration ${dollars(orchestration)} + monitoring ` +
      `${dollars(monitoring)} = ${dollars(orchestration + monitoring)} (goal <= $1.50: ${orchestration + monitoring <= 1.5 ? 'met' : 'NOT met'})`,
  );
}
console.log(lines.join('\n'));
