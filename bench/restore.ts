/**
 * bench/restore: one backup restored twice in one run, side by side.
 *
 * 1. A drill by the synthesized restore state machine, run locally as `pgsnap
 *    demo` runs it (local/local-restore.ts): the local EC2 makes each volume
 *    as a clone of the backup's snapshot, the staged agent mounts, recovers,
 *    starts and checks; the phases are the restore record's timings.
 * 2. A plain `cp -a` of the same snapshot directories and the same recovery
 *    (`pgsnap restore` from the repository, restore_command pgsnap wal-fetch,
 *    to the same target), timed per phase (bench/lib/copy-restore.ts).
 *
 * Then the Step Functions state transitions of the drill and their cost at
 * the Standard workflow price, and the Lambda invocations. The backup is made
 * as the demo makes its own (bench/lib/restore-source.ts). Everything made is
 * removed at the end, also after a failure or a signal.
 *
 * usage: npx tsx bench/restore.ts [pgbench scale=5]   (root for btrfs; else the copy provider)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openRepository } from '#domain/repository/open';
import type { RestoreRecord } from '#domain/restore/record';
import { freePort, newestAvailableMajor, ownedDir } from '../agent/restore/cluster.ts';
import { copyAndRecover } from './lib/copy-restore.ts';
import { removeLeftovers } from './lib/leftovers.ts';
import { loadAverage } from './lib/machine.ts';
import { cleanUp, cleanUpOnSignals, onCleanup, stopChildren } from './lib/processes.ts';
import { Report, resultsPath } from './lib/report.ts';
import { backUpSource, clusterName } from './lib/restore-source.ts';
import { columns } from './lib/table.ts';

const scale = Number(process.argv[2] ?? 5);
/**
 * List prices, us-east-1 (the same in eu-west-1): Step Functions Standard
 * workflows $0.025 per 1,000 state transitions (https://aws.amazon.com/step-functions/pricing/,
 * beyond the free tier of 4,000 a month); Lambda $0.20 per million requests
 * and $0.0000166667 per GB-second on x86 (https://aws.amazon.com/lambda/pricing/).
 */
const price = { transition: 0.025 / 1000, lambdaRequest: 0.2 / 1e6, lambdaGbSecond: 0.0000166667 };
/** Assumed per Lambda invocation, as bench/state-machine assumes: 256 MB for 300 ms. */
const lambdaGbSeconds = 0.25 * 0.3;

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const report = new Report(resultsPath('restore.txt'));
const work = ownedDir(mkdtempSync(join(tmpdir(), 'pgsnap-bench-restore-')), 0o711);
onCleanup(() => rmSync(work, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }));
const major = newestAvailableMajor();
/** Ends the agent commands the state machines started, and starts no other, once a signal came. */
const running = new AbortController();
cleanUpOnSignals(
  (signal) => {
    running.abort();
    report.progress(`${signal}: stopping and removing everything the bench made`);
  },
  (signal) => report.write(`interrupted by ${signal}`),
);

const seconds = (from: number, to: number) => ((to - from) / 1000).toFixed(2);
const at = (iso: string | undefined) => (iso ? Date.parse(iso) : Number.NaN);

try {
  const made = await backUpSource(work, scale, (m) => report.progress(m), running.signal);
  // Run before the volumes and the directory go: a server and mounts that a failed drill left.
  onCleanup(() => removeLeftovers(work, major));
  const { backupId, ec2, provider } = made;
  const snapshots = ec2.takenFor(backupId);

  report.progress('drill by the restore state machine, run locally');
  const [{ runRestoreLocally }, { newRestoreId }] = await Promise.all([
    import('../local/local-restore.ts'),
    import('#domain/restore/request'),
  ]);
  const restoreId = newRestoreId();
  const drill = await runRestoreLocally({
    synthesized: made.synthesized,
    executionName: restoreId,
    input: {
      cluster: clusterName,
      backupId,
      target: { immediate: true },
      mode: 'drill',
      instance: { launch: { launchTemplate: 'pgsnap-bench-drill', subnetId: 'subnet-0000000000000000a' } },
      mountRoot: ownedDir(join(work, restoreId), 0o711),
      port: await freePort(),
      checks: { amcheck: 'all' },
    },
    clusters: [{ name: clusterName, repository: made.repositoryUrl }],
    ec2,
    agentBinDir: made.agentBinDir,
    agentEnv: made.agentEnv,
    detail: () => {},
    signal: running.signal,
  });
  const repository = await openRepository(made.repositoryUrl, clusterName);
  const record = (await repository.readRestoreRecord(restoreId)) as RestoreRecord | undefined;
  if (drill.run.failure || record?.state !== 'completed' || !record.host) {
    throw new Error(
      `the drill failed: ${drill.run.failure ? `${drill.run.failure.error}: ${drill.run.failure.cause}` : `record ${record?.state}`}`,
    );
  }

  report.progress('cp -a of the same snapshots, and the same recovery');
  const copy = await copyAndRecover({
    snapshots,
    btrfs: provider.name === 'btrfs',
    work,
    backupId,
    repositoryUrl: made.repositoryUrl,
    cluster: clusterName,
    agentBinDir: made.agentBinDir,
    agentEnv: made.agentEnv,
    port: await freePort(),
    progress: (m) => report.progress(m),
  });

  const t = record.timings;
  const h = record.host.timings;
  const requested = at(t.requestedAt);
  const w = [46, 12, 18];
  const row = (phase: string, drillCell: string, copyCell: string) =>
    report.say(columns(w, [phase, drillCell, copyCell]));
  const cell = (from: number, to: number, start: number) =>
    Number.isFinite(from) && Number.isFinite(to) ? `${seconds(from, to)} (${seconds(start, to)})` : '–';
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
  report.say(`bench/restore: backup ${backupId} restored twice, to the end of the backup (target immediate)`);
  report.say(
    `  provider: ${provider.name}${made.noBtrfs ? ` (no btrfs: ${made.noBtrfs})` : ' (snapshots are btrfs subvolume snapshots; CreateVolume is a writable snapshot)'}`,
  );
  report.say(`  data: ${made.load}; ${made.sizes.map((s) => `${s.role} ${mib(s.bytes)}`).join(', ')}`);
  report.say(`  load average before the restores: ${loadAverage()}`);
  report.say();
  row('phase: seconds (since the start)', 'drill', 'cp -a + recovery');
  row('check the request, launch the instance', cell(requested, at(t.instanceReadyAt), requested), '–');
  row(
    'create the volumes (clones of the snapshots)',
    cell(at(t.instanceReadyAt), at(t.volumesCreatedAt), requested),
    '–',
  );
  row('volumes available', cell(at(t.volumesCreatedAt), at(t.volumesAvailableAt), requested), '–');
  row('attach the volumes', cell(at(t.volumesAvailableAt), at(t.attachedAt), requested), '–');
  row('mount on the host (SSM document, agent)', cell(at(t.attachedAt), at(h.mountedAt), requested), '–');
  row(
    `copy (cp -a${provider.name === 'btrfs' ? ' --reflink=never' : ''}, ${mib(copy.copiedBytes)} to ${copy.copiedTo})`,
    '–',
    cell(copy.startedAt, copy.copiedAt, copy.startedAt),
  );
  row(
    'prepare (backup_label, restore_command)',
    cell(at(h.mountedAt), at(h.preparedAt), requested),
    cell(copy.copiedAt, copy.preparedAt, copy.startedAt),
  );
  row(
    'start (pg_ctl start)',
    cell(at(h.preparedAt), at(h.startedAt), requested),
    cell(copy.preparedAt, copy.serverStartedAt, copy.startedAt),
  );
  row(
    'consistent (first connection accepted)',
    cell(at(h.startedAt), at(h.consistentAt), requested),
    cell(copy.serverStartedAt, copy.consistentAt, copy.startedAt),
  );
  row(
    'promoted at the target',
    cell(at(h.consistentAt), at(h.targetReachedAt), requested),
    cell(copy.consistentAt, copy.promotedAt, copy.startedAt),
  );
  row(
    'request to accepting connections (RTO)',
    `${record.rtoSeconds?.toFixed(2) ?? '?'} s`,
    `${seconds(copy.startedAt, copy.promotedAt)} s`,
  );
  row(
    'after: checks and teardown / stop and remove',
    seconds(at(t.acceptingAt), at(t.finishedAt)),
    (copy.removedMs / 1000).toFixed(2),
  );
  report.say(
    `  drill checks: ${Object.values(record.host.checks)
      .map((c) => c.detail)
      .join('; ')}`,
  );
  report.say(
    '  (consistent and promoted are polled every 500 ms by both, as the host does: ±0.5 s each; the drill ran first)',
  );

  // Every state entered is a billed transition; the Lambda steps are those whose resource is a function.
  const states = made.synthesized.restoreDefinition.States;
  const byKind = new Map<string, number>();
  for (const name of drill.run.entered) {
    const resource = String(states[name]?.Resource ?? states[name]?.Type ?? '');
    const kind = resource.startsWith('arn:aws:lambda:')
      ? 'Lambda'
      : resource.includes(':ssm:')
        ? 'SSM SendCommand'
        : resource.includes(':cloudwatch:')
          ? 'CloudWatch PutMetricData'
          : resource.includes(':events:')
            ? 'EventBridge PutEvents'
            : 'Choice/Wait/Pass/Succeed';
    byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
  }
  const transitions = drill.run.entered.length;
  const lambdas = byKind.get('Lambda') ?? 0;
  const stepFunctionsCost = transitions * price.transition;
  const lambdaCost = lambdas * (price.lambdaRequest + lambdaGbSeconds * price.lambdaGbSecond);
  report.say();
  report.say(
    `  Step Functions: ${transitions} state transitions in the drill (${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')})`,
  );
  report.say(
    `  cost of one drill at list price: Step Functions $${stepFunctionsCost.toFixed(5)} ` +
      `+ Lambda $${lambdaCost.toFixed(6)} (${lambdas} invocations) = $${(stepFunctionsCost + lambdaCost).toFixed(5)}`,
  );
  report.say(
    '  (Standard workflows $0.025 per 1,000 state transitions, aws.amazon.com/step-functions/pricing; Lambda ' +
      '$0.20 per million requests + 256 MB x 300 ms assumed per invocation, aws.amazon.com/lambda/pricing. ' +
      'Locally every volume is available and attached at the first look: in AWS each further poll adds ' +
      'check + choice + wait, 3 transitions)',
  );
  report.write('completed');
} catch (error) {
  report.progress(`failed: ${(error as Error).stack ?? String(error)}`);
  report.write(`failed: ${(error as Error).message}`);
  process.exitCode = 1;
} finally {
  await stopChildren();
  cleanUp();
}
