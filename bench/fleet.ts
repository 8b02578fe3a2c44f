/**
 * bench/fleet: the synthesized backup state machine (with its DR copy steps)
 * run for N clusters at once, against a model of EC2, EBS, Step Functions'
 * API, SSM and the hosts that enforces AWS's published token buckets and
 * quotas and answers with AWS's error codes, on a virtual clock (hours of
 * snapshot and copy time pass in seconds). For each N: the fleet started in
 * the same second (window off) beside the same fleet spread by Scheduler over
 * a flexible window (window on: the schedules' configured window, or an
 * assumed one when they have none), with the goals of issue 31 beside the
 * figures. The method, the model's assumptions and the sources are in
 * bench/README.md.
 *
 * usage: npx tsx bench/fleet.ts [sizes=10,100,500] [--window=<minutes>] [--seed=<n>]
 */

import { hostLatency } from './fleet/hosts.ts';
import { buckets, ebsQuotas } from './fleet/quotas.ts';
import { figuresOf, sideBySide } from './fleet/report.ts';
import { type FleetRun, runFleet, transfer } from './fleet/run.ts';
import { synthesizeFleet } from './fleet/synth.ts';

const option = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const sizes = (process.argv.slice(2).find((a) => !a.startsWith('--')) ?? '10,100,500').split(',').map(Number);
const seed = Number(option('seed') ?? 31);
/** When the schedules have no flexible window: what the "window on" column assumes. */
const assumedWindowMinutes = 15;

const started = performance.now();
const deployment = synthesizeFleet();
const configured = deployment.flexibleWindowMinutes;
const windowMinutes = Number(option('window') ?? configured ?? assumedWindowMinutes);
const windowSource = option('window')
  ? 'given with --window'
  : configured
    ? "the synthesized schedules' FlexibleTimeWindow"
    : `assumed: the synthesized schedules have FlexibleTimeWindow OFF`;

const failureSummary = (run: FleetRun) => {
  const reasons = new Map<string, number>();
  for (const o of run.outcomes) {
    for (const reason of [
      o.failure && `backup: ${o.failure}`,
      o.copyFailure && `DR copy: ${o.copyFailure}`,
    ]) {
      if (!reason) continue;
      const key = reason.replace(/(snap|vol|i)-[0-9a-f]{8,}/g, '$1-…').slice(0, 110);
      reasons.set(key, (reasons.get(key) ?? 0) + 1);
    }
  }
  return [...reasons.entries()].sort((a, b) => b[1] - a[1]).slice(0, 4);
};

const lines: string[] = [
  `bench/fleet: the synthesized backup definition (${Object.keys(deployment.definition.States).length} states, DR copy included) for N clusters of 3 volumes, hourly`,
  `  window on: ${windowMinutes} min (${windowSource}); window off: every start in the same second; seed ${seed}`,
  `  limits enforced: EC2 CreateSnapshot(s) bucket ${buckets['ec2:create-snapshot'].size}/${buckets['ec2:create-snapshot'].refill} per s, ` +
    `Describe ${buckets['ec2:describe'].size}/${buckets['ec2:describe'].refill}, CopySnapshot ${buckets['ec2:mutating-other'].size}/${buckets['ec2:mutating-other'].refill}; ` +
    `${ebsQuotas.pendingSnapshotsPerRegion} pending snapshots, ${ebsQuotas.concurrentSnapshotsPerVolume} per volume, ` +
    `${ebsQuotas.concurrentCopiesPerDestinationRegion} copies per destination Region; ` +
    `ListExecutions ${buckets['sfn:ListExecutions'].size}/${buckets['sfn:ListExecutions'].refill}, DescribeExecution ${buckets['sfn:DescribeExecution'].size}/${buckets['sfn:DescribeExecution'].refill}, ` +
    `StartExecution ${buckets['sfn:StartExecution'].size}/${buckets['sfn:StartExecution'].refill}; SSM SendCommand ${buckets['ssm:SendCommand'].size}/${buckets['ssm:SendCommand'].refill} (assumed)`,
  `  model: snapshot ${transfer.snapshotFixedSeconds} s + changed data at ${transfer.snapshotMiBPerSecond} MiB/s, copy ${transfer.copyFixedSeconds} s + ${transfer.copyMiBPerSecond} MiB/s; ` +
    `SSM delivery ${hostLatency.ssmDelivery} s, checkpoint ${hostLatency.fastCheckpoint} s (median)`,
  `  priced per cluster-month: ${deployment.backupsPerMonth} backups, ${deployment.metricsPerCluster} custom metrics, ` +
    `${deployment.alarmsPerCluster} alarms per cluster + ${deployment.alarmsPerFleet} per fleet (from the synthesized stacks)`,
];
if (deployment.definition && sizes.length > 0) {
  const singleRun = await runFleet(deployment, { clusters: 1, windowMinutes: 0, seed });
  const singleOff = figuresOf(singleRun, deployment);
  const singleOn = figuresOf(await runFleet(deployment, { clusters: 1, windowMinutes, seed }), deployment);
  lines.push(
    `  N = 1: backup-mode window p99 ${singleOff.windowP99.toFixed(1)} s, ${singleOff.callsPerBackup.toFixed(0)} API calls, ` +
      `${singleOff.transitionsPerBackup} transitions per backup (the reference for the relative goals)`,
    `    by state: ${Object.entries(singleRun.outcomes[0]?.transitionsByState ?? {})
      .filter(([, n]) => n > 1)
      .map(([state, n]) => `${state} ${n}`)
      .join(', ')} (the rest once each)`,
  );
  for (const clusters of sizes) {
    const off = await runFleet(deployment, { clusters, windowMinutes: 0, seed });
    const on = await runFleet(deployment, { clusters, windowMinutes, seed });
    if (off.unmodelled.length > 0) {
      lines.push(
        `  NOTE: task states without a model, answered {} after 50 ms: ${off.unmodelled.join('; ')}`,
      );
    }
    lines.push('', ...sideBySide(figuresOf(off, deployment), figuresOf(on, deployment), singleOff, singleOn));
    for (const [label, run] of [
      ['window off', off],
      ['window on', on],
    ] as const) {
      for (const [reason, count] of failureSummary(run)) lines.push(`    ${label}: ${count} × ${reason}`);
    }
    console.log(lines.splice(0).join('\n'));
  }
}
lines.push('', `ran in ${((performance.now() - started) / 1000).toFixed(0)} s`);
console.log(lines.join('\n'));
