/**
 * bench/state-machine: what one successful backup costs in Step Functions.
 *
 * Runs the synthesized definition with aws-local-stepfunctions: the Lambda
 * steps are the real handlers over an in-memory EC2, whose snapshots complete
 * after a simulated `hours` (the Wait state's seconds are added to a clock
 * instead of slept); the host and manifest steps answer at once (begin writes
 * the started manifest, in a file:// repository of the run's own). Counts the
 * state transitions (every state entered, as Step Functions bills them), the
 * ones spent polling, and prints the cost at list price.
 * Goal: at most 20 transitions outside polling, at most 30 polls per hour.
 *
 * usage: npx tsx bench/state-machine.ts [hours=1]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { newBackupId } from '#domain/ids';
import { openRepository } from '#domain/repository/open';
import { handler as checkSnapshots } from '../functions/check-snapshots.ts';
import { handler as createSnapshots } from '../functions/create-snapshots.ts';
import { handler as prepareBackup } from '../functions/prepare-backup.ts';
import { states } from '../infra/backup/state-names.ts';
import { localBudgetHandlers, setLocalBudgetEnvironment } from '../local/snapshot-budget.ts';
import { type Json, runLocalBackup, setLocalCatalog } from '../local/state-machine.ts';
import { stateMachineDefinition, synthStack } from '../test/support/backup-stack.ts';
import { FakeEc2 } from '../test/support/fake-ec2.ts';
import { startedManifest } from '../test/support/started-manifest.ts';

const hours = Number(process.argv[2] ?? 1);
/** List prices, us-east-1: Standard workflows per state transition; Lambda per request and per GB-second (arm64 not used). */
const price = { transition: 0.000025, lambdaRequest: 0.0000002, lambdaGbSecond: 0.0000166667 };
/** Assumed per Lambda invocation: 256 MB for 300 ms (cold starts included, generously). */
const lambdaGbSeconds = 0.25 * 0.3;

const instanceId = 'i-0123456789abcdef0';
const volumes = ['vol-0000000000000000b', 'vol-0000000000000000c'];
const stateMachineArn = 'arn:aws:states:us-east-1:111122223333:stateMachine:pgsnap-bench-backup';

const { template } = synthStack({
  name: 'bench',
  clusters: [{ name: 'orders-db', instance: { instanceId }, volumeIds: volumes }],
});
const definition = stateMachineDefinition(template);
const timeouts = { firstPollSeconds: 15, maxPollSeconds: 300, snapshotHours: 24 };

// The manifests of the run, removed at exit.
const repositoryDir = mkdtempSync(join(tmpdir(), 'pgsnap-bench-'));
process.on('exit', () => rmSync(repositoryDir, { recursive: true, force: true }));
const repositoryUrl = pathToFileURL(repositoryDir).href;
setLocalCatalog({
  clusters: [
    {
      name: 'orders-db',
      instanceId,
      volumeIds: volumes,
      fastCheckpoint: false,
      maxBackupMinutes: 60,
      repository: repositoryUrl,
    },
  ],
});
process.env.PGSNAP_FIRST_POLL_SECONDS = String(timeouts.firstPollSeconds);
process.env.PGSNAP_MAX_POLL_SECONDS = String(timeouts.maxPollSeconds);
process.env.PGSNAP_SNAPSHOT_HOURS = String(timeouts.snapshotHours);

let simulatedSeconds = 0;
const ec2 = new FakeEc2(instanceId, [
  { volumeId: 'vol-0000000000000000a', device: '/dev/xvda' },
  { volumeId: volumes[0]!, device: '/dev/sdf' },
  { volumeId: volumes[1]!, device: '/dev/sdg' },
]);
ec2.reset({
  completeAfterPolls: Number.POSITIVE_INFINITY,
  completedWhen: () => simulatedSeconds >= hours * 3600,
});

let lambdaInvocations = 0;
const lambda =
  (fn: (event: unknown) => Promise<unknown>) =>
  async (input: Json): Promise<Json> => {
    lambdaInvocations++;
    return (await fn(input)) as Json;
  };
const answer = (document: Json) => () => document;

setLocalBudgetEnvironment();
const run = await runLocalBackup(definition, {
  executionName: newBackupId(),
  stateMachineArn,
  input: { cluster: 'orders-db', trigger: 'schedule' },
  handlers: {
    ...Object.fromEntries(
      Object.entries(localBudgetHandlers()).map(([name, handle]) => [
        name,
        lambda(async (i) => handle(i as Json)),
      ]),
    ),
    [states.prepare]: lambda(prepareBackup),
    // As pgsnap begin does, the manifest is written as started: Create Snapshots records its call in it.
    [states.begin]: async (input) => {
      const [backupId] = (input as { Parameters: { backupId: [string] } }).Parameters.backupId;
      const repository = await openRepository(repositoryUrl, 'orders-db');
      const started = startedManifest('orders-db', backupId);
      await repository.writeManifest(started);
      // begin's answer is a proposal the orchestrator checks (domain/backup/proposal.ts).
      return {
        backupId,
        label: started.label,
        startLsn: started.startLsn,
        startWalFile: started.startWalFile,
        timeline: started.timeline,
        systemIdentifier: started.systemIdentifier,
        serverVersion: started.serverVersion,
        startedAt: started.timings.startedAt,
        backupFrom: started.backupFrom,
        holderPid: 1,
      };
    },
    [states.snapshot]: lambda(createSnapshots),
    [states.recordSnapshots]: lambda(async () => ({ state: 'snapshotting' })),
    [states.end]: answer({ stopLsn: '0/2000138' }),
    [states.checkSnapshots]: lambda(async (input) => {
      // The wait the previous poll asked for has passed.
      const poll = (input as { poll?: { waitSeconds: number } }).poll;
      simulatedSeconds += poll?.waitSeconds ?? 0;
      return checkSnapshots(input);
    }),
    [states.markCompleted]: lambda(async () => ({ state: 'completed' })),
  },
});
if (run.failure) throw new Error(`the backup failed: ${run.failure.error}: ${run.failure.cause}`);

const pollStates = new Set<string>([
  states.checkSnapshots,
  states.allSnapshotsCompleted,
  states.waitForSnapshots,
]);
const polls = run.entered.filter((s) => s === states.checkSnapshots).length;
const pollingTransitions = run.entered.filter((s) => pollStates.has(s)).length;
const otherTransitions = run.entered.length - pollingTransitions;
const stepFunctionsCost = run.entered.length * price.transition;
const lambdaCost = lambdaInvocations * (price.lambdaRequest + lambdaGbSeconds * price.lambdaGbSecond);

const lines = [
  `bench/state-machine: one successful backup, snapshots completing after ${hours} h (simulated)`,
  `  transitions outside polling: ${otherTransitions} (goal <= 20)`,
  `  polls: ${polls} over ${(simulatedSeconds / 3600).toFixed(2)} h of waiting, ${(polls / hours).toFixed(1)} per hour (goal <= 30)`,
  `  transitions spent polling: ${pollingTransitions} (check + choice + wait per poll)`,
  `  total transitions: ${run.entered.length}; Lambda invocations: ${lambdaInvocations}`,
  `  cost per backup at list price: Step Functions $${stepFunctionsCost.toFixed(5)} ` +
    `+ Lambda $${lambdaCost.toFixed(5)} = $${(stepFunctionsCost + lambdaCost).toFixed(5)}`,
  `  (${price.transition * 1000} USD per 1000 transitions; Lambda 256 MB x 300 ms per invocation assumed)`,
];
console.log(lines.join('\n'));
if (otherTransitions > 20 || polls / hours > 30) process.exitCode = 1;
