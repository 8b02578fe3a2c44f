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
 * Rounds alternate which of the two goes first (the first reads the
 * snapshots' blocks into the page cache); each phase is reported as its median
 * over the rounds, with every round's figure.
 *
 * usage: npx tsx bench/restore.ts [pgbench scale=5] [rounds=3]
 *   root for btrfs volumes, else (or with BENCH_PROVIDER=copy) the copy provider
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openRepository } from '#domain/repository/open';
import type { RestoreRecord } from '#domain/repository/restore-record';
import { initializationRateRange, modelFullSpeed } from '#domain/restore/full-speed';
import { freePort, newestAvailableMajor, ownedDir } from '../agent/restore/cluster.ts';
import { type CopyRestoreTimings, copyAndRecover } from './lib/copy-restore.ts';
import { removeLeftovers } from './lib/leftovers.ts';
import { loadAverage } from './lib/machine.ts';
import { cleanUp, cleanUpOnSignals, onCleanup, stopChildren } from './lib/processes.ts';
import { Report, resultsPath } from './lib/report.ts';
import { backUpSource, clusterName, type Source } from './lib/restore-source.ts';
import { median } from './lib/stats.ts';
import { columns } from './lib/table.ts';

const scale = Number(process.argv[2] ?? 5);
const rounds = Number(process.argv[3] ?? 3);
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

const at = (iso: string | undefined) => (iso ? Date.parse(iso) : Number.NaN);

/** The phases both columns report, in order; each restore has some of them. */
const phases = [
  ['check', 'check the request, launch the instance'],
  ['create', 'create the volumes (clones of the snapshots)'],
  ['available', 'volumes available'],
  ['attach', 'attach the volumes'],
  ['mount', 'mount on the host (SSM document, agent start)'],
  ['copy', 'copy (cp -a)'],
  ['prepare', 'prepare (backup_label, restore_command)'],
  ['start', 'start (pg_ctl start)'],
  ['consistent', 'consistent (first connection accepted)'],
  ['promoted', 'promoted at the target'],
  ['rto', 'request to accepting connections (RTO)'],
  ['fullSpeed', 'request to full speed (the record: the model)'],
  ['after', 'after: checks + teardown / stop + remove'],
] as const;
type Phase = (typeof phases)[number][0];
type Measured = Partial<Record<Phase, number>>;

/**
 * The drill's mount root beside the work directory, not in it: the target refuses to mount as root below a
 * directory another user owns, and the work directory is the servers' user's (as local/demo/drills.ts).
 */
function rootOwnedMountRoot(restoreId: string): string {
  const mountRoot = `${work}-${restoreId}`;
  mkdirSync(mountRoot, { mode: 0o755 });
  onCleanup(() => rmSync(mountRoot, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }));
  return mountRoot;
}

/** One drill by the restore state machine; its phases (ms) from the restore record. */
async function drillOnce(
  made: Source,
  runRestoreLocally: typeof import('../local/local-restore.ts').runRestoreLocally,
  restoreId: string,
): Promise<{ measured: Measured; entered: string[]; checks: string }> {
  const drill = await runRestoreLocally({
    synthesized: made.synthesized,
    executionName: restoreId,
    input: {
      cluster: clusterName,
      backupId: made.backupId,
      target: { immediate: true },
      mode: 'drill',
      instance: { launch: { launchTemplate: 'pgsnap-bench-drill', subnetId: 'subnet-0000000000000000a' } },
      mountRoot: rootOwnedMountRoot(restoreId),
      port: await freePort(),
      checks: { amcheck: 'all' },
    },
    clusters: [{ name: clusterName, repository: made.repositoryUrl }],
    ec2: made.ec2,
    agentBinDir: made.agentBinDir,
    agentEnv: made.agentEnv,
    detail: () => {},
    signal: running.signal,
  });
  const repository = await openRepository(made.repositoryUrl, clusterName);
  const record = (await repository.readRestoreRecord(restoreId)) as RestoreRecord | undefined;
  if (drill.run.failure || record?.state !== 'completed' || !record.host) {
    throw new Error(
      `drill ${restoreId} failed: ${drill.run.failure ? `${drill.run.failure.error}: ${drill.run.failure.cause}` : `its record is ${record?.state}`}`,
    );
  }
  const t = record.timings;
  const h = record.host.timings;
  const steps: Array<[Phase, string | undefined, string | undefined]> = [
    ['check', t.requestedAt, t.instanceReadyAt],
    ['create', t.instanceReadyAt, t.volumesCreatedAt],
    ['available', t.volumesCreatedAt, t.volumesAvailableAt],
    ['attach', t.volumesAvailableAt, t.attachedAt],
    ['mount', t.attachedAt, h.mountedAt],
    ['prepare', h.mountedAt, h.preparedAt],
    ['start', h.preparedAt, h.startedAt],
    ['consistent', h.startedAt, h.consistentAt],
    ['promoted', h.consistentAt, h.targetReachedAt],
    ['after', t.acceptingAt, t.finishedAt],
  ];
  const measured: Measured = Object.fromEntries(steps.map(([phase, from, to]) => [phase, at(to) - at(from)]));
  measured.rto = (record.rtoSeconds ?? Number.NaN) * 1000;
  // Time to full speed as the record has it: the local clones are whole at once, so this is the model's
  // figure for the recorded volume sizes in AWS (domain/restore/full-speed.ts), beside the measured phases.
  measured.fullSpeed = (record.timeToFullSpeedSeconds ?? Number.NaN) * 1000;
  const checks = Object.values(record.host.checks)
    .map((c) => c.detail)
    .join('; ');
  return { measured, entered: drill.run.entered, checks };
}

function copyPhases(c: CopyRestoreTimings): Measured {
  return {
    copy: c.copiedAt - c.startedAt,
    prepare: c.preparedAt - c.copiedAt,
    start: c.serverStartedAt - c.preparedAt,
    consistent: c.consistentAt - c.serverStartedAt,
    promoted: c.promotedAt - c.consistentAt,
    rto: c.promotedAt - c.startedAt,
    // A copy is whole on its disk when it opens: at full speed from the start.
    fullSpeed: c.promotedAt - c.startedAt,
    after: c.removedMs,
  };
}

/** Median (each round), in seconds; – for a phase the restore does not have. */
function cell(measured: Measured[], phase: Phase): string {
  const values = measured.map((m) => m[phase]).filter((v): v is number => v !== undefined);
  if (values.length === 0) return '–';
  const s = (ms: number) => (ms / 1000).toFixed(2);
  return values.length === 1 ? s(values[0]!) : `${s(median(values))} (${values.map(s).join(' ')})`;
}

/**
 * The model's time to full speed in AWS of this bench's data (domain/restore/full-speed.ts): each volume
 * fetches its blocks from S3 on first read, so the largest volume decides; at EBS's default rate an
 * estimate (AWS publishes no figure), at a provisioned rate what EBS initializes at.
 */
function fullSpeedModel(volumeBytes: number[]): string {
  const largest = Math.max(0, ...volumeBytes);
  const at = (rate?: number) => {
    const model = modelFullSpeed(largest, rate);
    return `${model.seconds} s at ${model.rateMiBps} MiB/s${model.basis === 'estimate' ? ' (estimate, default rate)' : ''}`;
  };
  const { min, max } = initializationRateRange;
  return `time to full speed in AWS, the model for the largest volume's ${(largest / 2 ** 20).toFixed(0)} MiB after the volumes are made: ${at()}; provisioned ${at(min)}, ${at(max)}`;
}

/** Every state entered is a billed transition; the Lambda steps are those whose resource is a function. */
function transitionsByKind(made: Source, entered: string[]): Map<string, number> {
  const states = made.synthesized.restoreDefinition.States;
  const byKind = new Map<string, number>();
  for (const name of entered) {
    const resource = String(states[name]?.Resource ?? '');
    const kind = resource.startsWith('arn:aws:lambda:')
      ? 'Lambda'
      : resource.includes(':ssm:')
        ? 'SSM SendCommand'
        : resource.includes(':cloudwatch:')
          ? 'CloudWatch PutMetricData'
          : resource.includes(':events:')
            ? 'EventBridge PutEvents'
            : 'flow (Choice, Wait, Pass, Succeed)';
    byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
  }
  return byKind;
}

try {
  const made = await backUpSource(work, scale, (m) => report.progress(m), running.signal);
  // Run before the volumes and the directory go: a server and mounts that a failed drill left.
  onCleanup(() => removeLeftovers(work, major));
  const [{ runRestoreLocally }, { newRestoreId }] = await Promise.all([
    import('../local/local-restore.ts'),
    import('#domain/ids'),
  ]);
  const drills: Measured[] = [];
  const copies: Measured[] = [];
  let entered: string[] = [];
  let checks = '';
  let copied: CopyRestoreTimings | undefined;
  const loadBefore = loadAverage();
  for (let round = 1; round <= rounds; round++) {
    const drill = async () => {
      report.progress(`round ${round}: a drill by the restore state machine, run locally`);
      const done = await drillOnce(made, runRestoreLocally, newRestoreId());
      if (entered.length > 0 && done.entered.length !== entered.length) {
        report.progress(`round ${round}: ${done.entered.length} transitions, not ${entered.length}`);
      }
      ({ entered, checks } = done);
      drills.push(done.measured);
    };
    const copy = async () => {
      report.progress(`round ${round}: cp -a of the same snapshots, and the same recovery`);
      copied = await copyAndRecover({
        snapshots: made.ec2.takenFor(made.backupId),
        btrfs: made.provider.name === 'btrfs',
        work,
        backupId: made.backupId,
        repositoryUrl: made.repositoryUrl,
        cluster: clusterName,
        agentBinDir: made.agentBinDir,
        agentEnv: made.agentEnv,
        port: await freePort(),
        progress: () => {},
      });
      copies.push(copyPhases(copied));
    };
    for (const next of round % 2 === 1 ? [drill, copy] : [copy, drill]) await next();
  }

  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
  report.say(
    `bench/restore: backup ${made.backupId} restored to its end (target immediate), ${rounds} rounds of a drill by the restore state machine and cp -a + recovery`,
  );
  report.say(
    `  provider: ${made.provider.name}${made.noBtrfs ? ` (no btrfs: ${made.noBtrfs})` : ' (btrfs subvolume snapshots; CreateVolume is a writable snapshot of one)'}`,
  );
  report.say(`  data: ${made.load}; ${made.sizes.map((s) => `${s.role} ${mib(s.bytes)}`).join(', ')}`);
  report.say(
    `  cp -a${made.provider.name === 'btrfs' ? ' --reflink=never' : ''}: ${mib(copied!.copiedBytes)} onto ${copied!.copiedTo}` +
      (made.provider.name === 'btrfs' ? ', beside the snapshots' : ', in the work directory'),
  );
  report.say(`  load average before the restores: ${loadBefore}; after: ${loadAverage()}`);
  report.say();
  const w = [46, 24, 24];
  report.say(columns(w, ['phase, s: median (each round)', 'drill', 'cp -a + recovery']));
  for (const [phase, words] of phases)
    report.say(columns(w, [words, cell(drills, phase), cell(copies, phase)]));
  report.say(`  drill checks: ${checks}`);
  report.say(`  ${fullSpeedModel(made.sizes.map((v) => v.bytes))}`);
  report.say(
    '  (consistent and promoted: polled every 500 ms by both, as the host does; rounds alternate which goes first)',
  );

  const byKind = transitionsByKind(made, entered);
  const lambdas = byKind.get('Lambda') ?? 0;
  const stepFunctionsCost = entered.length * price.transition;
  const lambdaCost = lambdas * (price.lambdaRequest + lambdaGbSeconds * price.lambdaGbSecond);
  report.say();
  report.say(
    `  Step Functions: ${entered.length} state transitions in one drill (${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')})`,
  );
  report.say(
    `  cost of one drill at list price: Step Functions $${stepFunctionsCost.toFixed(5)} ` +
      `+ Lambda $${lambdaCost.toFixed(6)} (${lambdas} invocations) = $${(stepFunctionsCost + lambdaCost).toFixed(5)}`,
  );
  report.say(
    '  (Standard workflows: $0.025 per 1,000 state transitions, aws.amazon.com/step-functions/pricing;',
  );
  report.say(
    '  Lambda: $0.20 per million requests, 256 MB x 300 ms assumed per invocation, aws.amazon.com/lambda/pricing.',
  );
  report.say(
    '  Here every volume is available and attached at the first look; in AWS each further poll adds 3: check, choice, wait)',
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
