/**
 * One fleet run: N clusters' backups, each an execution of the synthesized
 * definition in aws-local-stepfunctions (its Waits, Retries, Catches and
 * timeouts as written, on the virtual clock), started by the schedules in the
 * same minute, all at once or spread over a flexible window. The Lambda steps
 * run pgsnap's own handlers and domain code with AWS SDK clients answered by
 * the model; the host steps are the agents of hosts.ts; the manifest steps
 * (S3 writes) and the metric and event steps answer after a latency.
 */
import '../../local/promise-with-resolvers.ts';
import { StateMachine } from 'aws-local-stepfunctions';
import { MemoryBudgetStore } from '#domain/budget/semaphore';
import { checkDrCopies, startDrCopies } from '#domain/ebs/dr-copies';
import type { DrTarget } from '#domain/ebs/dr-target';
import type { PollMemory } from '#domain/ebs/poll-wait';
import { backupIdFrom } from '#domain/ids';
import { acquireCopyBudgetHandler } from '../../functions/acquire-copy-budget.ts';
import { acquireSnapshotBudgetHandler } from '../../functions/acquire-snapshot-budget.ts';
import { checkSnapshotsHandler } from '../../functions/check-snapshots.ts';
import { createSnapshotsHandler } from '../../functions/create-snapshots.ts';
import { deleteSnapshotsHandler } from '../../functions/delete-snapshots.ts';
import { prepareBackupHandler } from '../../functions/prepare-backup.ts';
import { releaseCopyBudgetHandler } from '../../functions/release-copy-budget.ts';
import { releaseSnapshotBudgetHandler } from '../../functions/release-snapshot-budget.ts';
import { states } from '../../infra/backup/state-names.ts';
import { LocalTaskTokens, setLocalCatalog } from '../../local/state-machine.ts';
import { type CallLog, type ModelWorld, modelClients } from './clients.ts';
import { VirtualClock } from './clock.ts';
import { Ec2Model, type FleetVolume, type TransferModel } from './ec2.ts';
import { Hosts, type HostTimes } from './hosts.ts';
import { throttlingCodes } from './quotas.ts';
import { Draw } from './random.ts';
import { SfnModel } from './sfn.ts';
import {
  benchCluster,
  drAccount,
  drRegion,
  type FleetDeployment,
  fleetAccount,
  fleetRegion,
} from './synth.ts';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Handler = (input: Json) => Promise<Json>;

export interface FleetSpec {
  clusters: number;
  /** Minutes over which Scheduler spreads the starts; 0: every start in the same second. */
  windowMinutes: number;
  seed: number;
}

/** Snapshot and copy speeds (see bench/README.md). */
export const transfer: TransferModel = {
  snapshotFixedSeconds: 60,
  snapshotMiBPerSecond: 30,
  copyFixedSeconds: 240,
  copyMiBPerSecond: 40,
};

export interface BackupOutcome {
  cluster: string;
  status: 'completed' | 'failed' | 'stepped-aside';
  failure?: string;
  byThrottling: boolean;
  windowMs?: number;
  backupMs?: number;
  copy: 'completed' | 'failed' | 'none';
  copyFailure?: string;
  copyLagMs?: number;
  transitions: number;
  /** The billed transitions by state: where a backup's cost goes. */
  transitionsByState: Record<string, number>;
  lambdaInvocations: number;
  calls: number;
  metricAndEventCalls: number;
  throttled: number;
}

export interface FleetRun {
  spec: FleetSpec;
  outcomes: BackupOutcome[];
  peakPending: number;
  peakCopies: number;
  refusals: Map<string, number>;
  peakTransitionsPerSecond: number;
  virtualHours: number;
  wallSeconds: number;
  /** Task states of the definition the bench has no model for (answered with {}). */
  unmodelled: string[];
}

const isThrottling = (text: string | undefined) => [...throttlingCodes].some((code) => text?.includes(code));

function taskStates(definition: Record<string, unknown>): string[] {
  const found: string[] = [];
  const walk = (statesOf: Record<string, Record<string, unknown>>) => {
    for (const [name, state] of Object.entries(statesOf)) {
      if (state.Type === 'Task') found.push(name);
      for (const branch of (state.Branches as Array<{ States: never }>) ?? []) walk(branch.States);
      const inner = (state.ItemProcessor ?? state.Iterator) as { States: never } | undefined;
      if (inner) walk(inner.States);
    }
  };
  walk(definition.States as Record<string, Record<string, unknown>>);
  return found;
}

function fleetVolumes(index: number, instanceId: string, draw: Draw): FleetVolume[] {
  const cluster = benchCluster(index);
  return (cluster.volumeIds ?? []).map((volumeId, v) => ({
    volumeId,
    instanceId,
    device: `/dev/sd${String.fromCharCode(102 + v)}`,
    sizeGiB: v === 1 ? 200 : 1000,
    // Changed data per hourly backup: a few GiB, a long tail (data and WAL volumes change most).
    changedGiB: draw.lognormal(v === 2 ? 1 : 3, 0.8, 0.05, 100),
  }));
}

export async function runFleet(deployment: FleetDeployment, spec: FleetSpec): Promise<FleetRun> {
  const wallStart = performance.now();
  const clock = new VirtualClock(new Date('2026-01-05T03:00:00.000Z'));
  clock.install(spec.seed);
  try {
    const draw = new Draw(spec.seed + 1);
    const world: ModelWorld = {
      clock,
      draw,
      ec2: new Ec2Model(clock, transfer, draw),
      sfn: new SfnModel(clock),
    };
    const hosts = new Hosts(clock, world.sfn, draw);
    const stateMachineArn = `arn:aws:states:${fleetRegion}:${fleetAccount}:stateMachine:pgsnap-fleet-backup`;
    const clusters = Array.from({ length: spec.clusters }, (_, i) => benchCluster(i));
    const repositoryOf = (name: string) => `s3://pgsnap-fleet-${fleetAccount}/pgsnap/${name}`;
    for (const [i, cluster] of clusters.entries()) {
      const instanceId = (cluster.instance as { instanceId: string }).instanceId;
      world.ec2.addInstance(
        instanceId,
        [{ Key: 'pgsnap:cluster', Value: cluster.name }],
        fleetVolumes(i, instanceId, draw),
      );
    }
    Object.assign(process.env, deployment.lambdaSettings);
    setLocalCatalog({
      clusters: clusters.map((c) => ({
        name: c.name,
        instanceId: (c.instance as { instanceId: string }).instanceId,
        volumeIds: c.volumeIds,
        fastCheckpoint: c.fastCheckpoint ?? false,
        maxBackupMinutes: 60,
        repository: repositoryOf(c.name),
      })),
    });
    const target: DrTarget = {
      sourceAccount: fleetAccount,
      sourceRegion: fleetRegion,
      account: drAccount,
      region: drRegion,
      kmsKeyArn: `arn:aws:kms:${drRegion}:${drAccount}:alias/pgsnap-dr`,
      roleArn: `arn:aws:iam::${drAccount}:role/pgsnap-fleet-dr-copy`,
      externalId: 'pgsnap-fleet-7f3a9c2e',
      clusters: Object.fromEntries(clusters.map((c) => [c.name, { repository: `s3://pgsnap-dr/${c.name}` }])),
    };
    process.env.PGSNAP_DR = JSON.stringify(target);
    // The budget table's items (pending snapshots, the DR copy queue), one store for the fleet, as in DynamoDB.
    const budgets = new MemoryBudgetStore();
    // The acquire steps wait for their task tokens, answered by whichever budget Lambda hands them a share.
    const tokens = new LocalTaskTokens();
    const pollSettings = {
      firstPollSeconds: Number(deployment.lambdaSettings.PGSNAP_FIRST_POLL_SECONDS ?? 15),
      maxPollSeconds: Number(deployment.lambdaSettings.PGSNAP_MAX_POLL_SECONDS ?? 300),
      snapshotHours: Number(deployment.lambdaSettings.PGSNAP_COPY_HOURS ?? 24),
    };
    const machine = new StateMachine(deployment.definition as never, {
      validationOptions: { checkArn: false, checkPaths: false },
    });
    const tasks = taskStates(deployment.definition);
    const modelled = new Set<string>(Object.values(states));
    const unmodelled = tasks.filter((name) => !modelled.has(name));
    const transitionsBySecond = new Map<number, number>();

    const runOne = async (index: number): Promise<BackupOutcome> => {
      const cluster = clusters[index]!;
      await clock.sleep(
        spec.windowMinutes > 0 ? draw.uniform(0, spec.windowMinutes * 60_000) : draw.uniform(0, 900),
      );
      const log: CallLog = { calls: new Map(), errors: new Map() };
      const clients = modelClients(world, log, { source: fleetRegion, dr: drRegion });
      const times: HostTimes = {};
      const outcome: BackupOutcome = {
        cluster: cluster.name,
        status: 'failed',
        byThrottling: false,
        copy: 'none',
        transitions: 0,
        transitionsByState: {},
        lambdaInvocations: 1, // the schedule's start Lambda
        calls: 0,
        metricAndEventCalls: 0,
        throttled: 0,
      };
      const lastErrors: string[] = [];
      const lambda =
        (fn: (input: Json) => Promise<unknown>): Handler =>
        async (input) => {
          outcome.lambdaInvocations++;
          await clock.sleep(draw.lognormal(40, 0.5, 10, 1_000));
          try {
            return (await fn(input)) as Json;
          } catch (error) {
            lastErrors.push(`${(error as Error).name}: ${(error as Error).message}`);
            throw error;
          }
        };
      const after =
        (ms: number, answer: (input: Json) => Json): Handler =>
        async (input) => {
          await clock.sleep(draw.lognormal(ms, 0.4, ms / 5, ms * 20));
          return answer(input);
        };
      const record = (state: string) =>
        lambda(async () => {
          await clock.sleep(draw.lognormal(60, 0.5, 10, 2_000)); // the manifest's S3 write
          return { state };
        });
      const counted = (): Handler => async () => {
        outcome.metricAndEventCalls++;
        await clock.sleep(draw.lognormal(30, 0.4, 5, 500));
        return {};
      };
      const onHost = hosts.handler(log, times);
      const hostStep: Handler = async (input) => {
        try {
          return await onHost(input);
        } catch (error) {
          lastErrors.push(`${(error as Error).name}: ${(error as Error).message}`);
          throw error;
        }
      };
      // SendTaskSuccess as this execution's Lambdas call it: counted, and under Step Functions' bucket.
      const answers = {
        succeed: async (token: string, output: unknown) => {
          log.calls.set('SFN:SendTaskSuccess', (log.calls.get('SFN:SendTaskSuccess') ?? 0) + 1);
          world.sfn.answer('SendTaskSuccess', {});
          await tokens.succeed(token, output);
        },
      };
      const handlers: Record<string, Handler> = {
        ...Object.fromEntries(unmodelled.map((name) => [name, after(50, () => ({}))])),
        [states.prepare]: lambda(prepareBackupHandler({ ec2: clients.ec2 })),
        [states.acquireBudget]: tokens.task(
          lambda(
            acquireSnapshotBudgetHandler(
              () => budgets,
              () => answers,
            ),
          ),
        ),
        [states.releaseBudget]: lambda(
          releaseSnapshotBudgetHandler(
            () => budgets,
            () => answers,
          ),
        ),
        [states.releaseBudgetOnFailure]: lambda(
          releaseSnapshotBudgetHandler(
            () => budgets,
            () => answers,
          ),
        ),
        [states.acquireCopies]: tokens.task(
          lambda(
            acquireCopyBudgetHandler(
              () => budgets,
              () => answers,
            ),
          ),
        ),
        [states.releaseCopies]: lambda(
          releaseCopyBudgetHandler(
            () => budgets,
            () => answers,
          ),
        ),
        [states.releaseCopiesOnFailure]: lambda(
          releaseCopyBudgetHandler(
            () => budgets,
            () => answers,
          ),
        ),
        [states.begin]: hostStep,
        [states.snapshot]: lambda((input) =>
          createSnapshotsHandler(clients.ec2)({ ...(input as Record<string, Json>), repository: undefined }),
        ),
        [states.recordSnapshots]: record('snapshotting'),
        [states.end]: hostStep,
        [states.checkSnapshots]: lambda(checkSnapshotsHandler(clients.ec2)),
        [states.markCompleted]: record('completed'),
        [states.countCompleted]: counted(),
        [states.announceCompleted]: counted(),
        [states.copy]: lambda(async (input) => {
          const request = input as { cluster: string; backupId: string; snapshotSet: { snapshots: never[] } };
          const copySet = await startDrCopies(
            { source: { ec2: clients.ec2, kms: clients.kms }, drEc2: clients.drEc2 },
            {
              target,
              cluster: request.cluster,
              backupId: request.backupId,
              snapshots: request.snapshotSet.snapshots,
            },
          );
          await clock.sleep(draw.lognormal(300, 0.4, 50, 5_000)); // cluster.json, artifacts, DR manifest to S3
          return copySet;
        }),
        [states.checkCopies]: lambda(async (input) => {
          const request = input as { dr: never; copyPoll?: { attempt: number } & Partial<PollMemory> };
          const last = request.copyPoll;
          return checkDrCopies(clients.drEc2, {
            copySet: request.dr,
            attempt: last?.attempt ?? 0,
            ...(last?.at && last.seen ? { last: { at: last.at, seen: last.seen } } : {}),
            settings: pollSettings,
          });
        }),
        [states.recordCopies]: record('copied'),
        [states.recordFailedCopies]: record('copy-failed'),
        [states.countCopyFailed]: counted(),
        [states.announceCopyFailed]: counted(),
        [states.applyRetention]: lambda(async () => ({ kept: 24, deleted: [] })),
        [states.abort]: hostStep,
        [states.deleteSnapshots]: lambda(deleteSnapshotsHandler(clients.ec2)),
        [states.markFailed]: record('failed'),
        [states.countFailed]: counted(),
        [states.announceFailed]: counted(),
      };
      // Scheduler invokes the start Lambda, which calls StartExecution (retried by Scheduler when throttled).
      const name = backupIdFrom(new Date(clock.now), cluster.name);
      const executionArn = `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
      const input = { cluster: cluster.name, trigger: 'schedule' };
      for (let attempt = 0; ; attempt++) {
        log.calls.set('SFN:StartExecution', (log.calls.get('SFN:StartExecution') ?? 0) + 1);
        try {
          world.sfn.start({ executionArn, stateMachineArn, name, input: JSON.stringify(input) });
          break;
        } catch (error) {
          if (attempt > 20) throw error;
          await clock.sleep(draw.uniform(1_000, 60_000));
        }
      }
      const startedAt = clock.now;
      const execution = machine.run(input, {
        overrides: { taskResourceLocalHandlers: handlers as never },
        context: {
          Execution: { Id: executionArn, Name: name },
          StateMachine: { Id: stateMachineArn, Name: 'pgsnap-fleet-backup' },
          Task: { Token: `token-${name}` },
        } as never,
      });
      let completedAt: number | undefined;
      const events = (async () => {
        for await (const event of execution.eventLogs) {
          // Step Functions bills a retry as a transition (a waiting share's ask again after its timeout, too).
          const billed = (name: string) => {
            outcome.transitions++;
            outcome.transitionsByState[name] = (outcome.transitionsByState[name] ?? 0) + 1;
          };
          if (event.type === 'StateRetried') billed(`${event.state.name} (retry)`);
          if (event.type !== 'StateEntered') continue;
          billed(event.state.name);
          const second = Math.floor(clock.now / 1000);
          transitionsBySecond.set(second, (transitionsBySecond.get(second) ?? 0) + 1);
          const state = event.state.name;
          if (state === states.markCompleted) completedAt = clock.now;
          if (state === states.leaveToRunning) outcome.status = 'stepped-aside';
          if (state === states.recordCopies && completedAt !== undefined) {
            outcome.copy = 'completed';
            outcome.copyLagMs = clock.now - completedAt;
          }
          if (state === states.noteCopyFailed) {
            outcome.copy = 'failed';
            outcome.copyFailure = lastErrors.at(-1);
          }
        }
      })();
      try {
        await execution.result;
        if (outcome.status !== 'stepped-aside') outcome.status = completedAt ? 'completed' : 'failed';
        world.sfn.finish(executionArn, 'SUCCEEDED');
      } catch (error) {
        const cause = (error as { cause?: { name: string; message: string } }).cause;
        // The first error a step met is what sent the backup down the failure path.
        outcome.failure =
          lastErrors.at(0) ?? `${cause?.name ?? (error as Error).name}: ${cause?.message ?? ''}`;
        world.sfn.finish(executionArn, 'FAILED');
      }
      await events;
      if (outcome.status === 'completed' && completedAt !== undefined)
        outcome.backupMs = completedAt - startedAt;
      if (
        times.backupModeFrom !== undefined &&
        times.backupModeTo !== undefined &&
        outcome.status === 'completed'
      ) {
        outcome.windowMs = times.backupModeTo - times.backupModeFrom;
      }
      if (outcome.status === 'failed') outcome.byThrottling = isThrottling(outcome.failure);
      outcome.calls = [...log.calls.values()].reduce((a, b) => a + b, 0) + outcome.metricAndEventCalls;
      outcome.throttled = [...log.errors.entries()]
        .filter(([code]) => throttlingCodes.has(code))
        .reduce((a, [, n]) => a + n, 0);
      return outcome;
    };

    const outcomes = await clock.run(Promise.all(clusters.map((_, i) => runOne(i))), 7 * 24 * 3_600_000);
    const refusals = new Map<string, number>(world.sfn.refusals);
    for (const [code, n] of world.ec2.refusals) refusals.set(code, (refusals.get(code) ?? 0) + n);
    if (hosts.refused > 0) refusals.set('Ssm.ThrottlingException', hosts.refused);
    return {
      spec,
      outcomes,
      peakPending: world.ec2.region(fleetRegion).pending.peak,
      peakCopies: world.ec2.region(drRegion).copies.peak,
      refusals,
      peakTransitionsPerSecond: Math.max(0, ...transitionsBySecond.values()),
      virtualHours: (clock.now - new Date('2026-01-05T03:00:00.000Z').getTime()) / 3_600_000,
      wallSeconds: (performance.now() - wallStart) / 1000,
      unmodelled,
    };
  } finally {
    clock.uninstall();
  }
}
