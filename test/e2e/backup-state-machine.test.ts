/**
 * The synthesized backup state machine, run locally: the Lambda steps are the
 * real handlers against an in-memory EC2 (aws-sdk-client-mock), the SSM steps
 * run the real agent document with bash and the bundled agent against a real
 * PostgreSQL 15, which answers with --task-token through a local stand-in for
 * the Step Functions API (SendTaskSuccess / SendTaskFailure). Each run is judged as an operator would: the outcome and its
 * reason, the events, the snapshots left in the account, and whether the
 * server left backup mode.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SFNClient } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import type { MemoryBudgetStore } from '#domain/budget/semaphore';
import { newBackupId } from '#domain/ids';
import { handler as checkSnapshots } from '../../functions/check-snapshots.ts';
import { handler as createSnapshots } from '../../functions/create-snapshots.ts';
import { handler as deleteSnapshots } from '../../functions/delete-snapshots.ts';
import { handler as prepareBackup } from '../../functions/prepare-backup.ts';
import { handler as recordBackup } from '../../functions/record-backup.ts';
import { type StateName, states } from '../../infra/backup/state-names.ts';
import type { EnvironmentInput } from '../../infra/config/config.ts';
import { localBudgetHandlers, setLocalBudgetEnvironment } from '../../local/snapshot-budget.ts';
import {
  type Json,
  type LocalBackupRun,
  runLocalBackup,
  setLocalCatalog,
  type TaskHandler,
  taskToken,
} from '../../local/state-machine.ts';
import { TaskTokenEndpoint } from '../../local/task-token-endpoint.ts';
import { backupAbortedLogLine, pgsnapSessions } from '../support/backup-mode.ts';
import { stateMachineDefinition, synthStack } from '../support/backup-stack.ts';
import { Cluster } from '../support/cluster.ts';
import { FakeEc2 } from '../support/fake-ec2.ts';
import { pgsnap, pgsnapBin } from '../support/pgsnap.ts';
import { type TestRepository, testRepository } from '../support/repository.ts';
import { fakeBinDir, renderAgentDocument, runDocument } from '../support/ssm-document.ts';

const instanceId = 'i-0123456789abcdef0';
const volumes = {
  root: 'vol-0000000000000000a',
  data: 'vol-0000000000000000b',
  wal: 'vol-0000000000000000c',
  other: 'vol-0000000000000000d',
};
const stateMachineArn = 'arn:aws:states:eu-west-1:111122223333:stateMachine:pgsnap-e2e-backup';

function environment(hostCommandSeconds: number): EnvironmentInput {
  return {
    name: 'e2e',
    account: '111122223333',
    region: 'eu-west-1',
    clusters: [
      {
        name: 'orders-db',
        instance: { instanceId },
        volumeIds: [volumes.data, volumes.wal],
        fastCheckpoint: true,
      },
    ],
    timeouts: { hostCommandSeconds, heartbeatSeconds: 60 },
  };
}
const definition = stateMachineDefinition(synthStack(environment(120)).template);
/** A definition whose host steps time out after 3 s, for the timeout case. */
const impatientDefinition = stateMachineDefinition(synthStack(environment(3)).template);

const ec2 = new FakeEc2(instanceId, [
  { volumeId: volumes.root, device: '/dev/xvda' },
  { volumeId: volumes.data, device: '/dev/sdf' },
  { volumeId: volumes.wal, device: '/dev/sdg' },
  { volumeId: volumes.other, device: '/dev/sdh' },
]);
const sfn = mockClient(SFNClient);

let cluster: Cluster;
let repo: TestRepository;
let scratch: string;
let env: NodeJS.ProcessEnv;
let shimDir: string;
let stepFunctions: TaskTokenEndpoint;

beforeAll(async () => {
  repo = testRepository('file');
  // The server archives into the repository itself, as on a real host (archive_command = pgsnap wal-push).
  cluster = await Cluster.create({ major: 15, settings: { archive_command: repo.archiveCommand() } });
  await cluster.query('SELECT pg_switch_wal()');
  scratch = mkdtempSync(join(tmpdir(), 'pgsnap-e2e-'));
  stepFunctions = await TaskTokenEndpoint.start();
  env = { ...cluster.env, ...stepFunctions.env, PGSNAP_STATE_DIR: join(scratch, 'state') };
  // The installed agent: /usr/local/bin/pgsnap on a host.
  shimDir = fakeBinDir(join(scratch, 'bin'), `#!/bin/sh\nexec ${process.execPath} ${pgsnapBin} "$@"\n`);
  setLocalCatalog({
    clusters: [
      {
        name: 'orders-db',
        instanceId,
        volumeIds: [volumes.data, volumes.wal],
        fastCheckpoint: true,
        maxBackupMinutes: 60,
        repository: repo.url,
      },
    ],
  });
  process.env.PGSNAP_FIRST_POLL_SECONDS = '15';
  process.env.PGSNAP_MAX_POLL_SECONDS = '300';
  process.env.PGSNAP_SNAPSHOT_HOURS = '24';
  setLocalBudgetEnvironment();
});

afterAll(async () => {
  await stepFunctions?.close();
  cluster?.destroy();
  repo?.destroy();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

beforeEach(() => {
  stepFunctions.calls.length = 0;
  sfn.reset();
});

interface HostLog {
  commands: string[];
  beginResult?: Record<string, Json>;
  /** What abort sent with SendTaskSuccess. */
  abortResult?: Record<string, Json>;
  /** performance.now() when begin and end returned, and around the snapshot step. */
  beginReturned?: number;
  endReturned?: number;
  snapshotStarted?: number;
  snapshotReturned?: number;
}

/**
 * The SSM steps: SendCommand's parameters through the real document and the
 * real agent; the task's result is what the agent sends with SendTaskSuccess,
 * its error what it sends with SendTaskFailure.
 */
function onHost(log: HostLog): TaskHandler {
  return async (input) => {
    const parameters = (input as { Parameters: Record<string, string[]> }).Parameters;
    const values = Object.fromEntries(Object.entries(parameters).map(([key, value]) => [key, value[0]!]));
    log.commands.push(values.command!);
    const answer = stepFunctions.answerFor(values.taskToken!);
    // The repository as the host's pgsnap.env names it: the document passes none.
    const exited = runDocument(renderAgentDocument(values), shimDir, { ...env, PGSNAP_REPO: repo.url });
    const document = (await Promise.race([
      answer,
      exited.then(async (result) => {
        // An agent that exits without answering would leave the task to time out in AWS; say so at once here.
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        throw new Error(`the agent exited ${result.code} without answering Step Functions: ${result.stderr}`);
      }),
    ])) as Record<string, Json>;
    if (values.command === 'begin') {
      log.beginResult = document;
      log.beginReturned = performance.now();
    }
    if (values.command === 'end') log.endReturned = performance.now();
    if (values.command === 'abort') log.abortResult = document;
    await exited;
    return document;
  };
}

async function backup(
  options: {
    hooks?: { afterSnapshot?: (log: HostLog) => Promise<void> | void };
    handlers?: (log: HostLog) => Partial<Record<StateName, TaskHandler>>;
    definition?: Record<string, unknown>;
    /** The execution's name; a new backupId, as `pgsnap backup start` names it, unless given. */
    executionName?: string;
    input?: Json;
    /** The pending-snapshot budget's store: shared between runs that compete for it. */
    budget?: MemoryBudgetStore;
  } = {},
): Promise<{ run: LocalBackupRun; log: HostLog; backupId: string; startTime?: string }> {
  const log: HostLog = { commands: [] };
  const executionName = options.executionName ?? newBackupId();
  const host = onHost(log);
  let startTime: string | undefined;
  const run = await runLocalBackup(options.definition ?? definition, {
    executionName,
    stateMachineArn,
    input: options.input ?? { cluster: 'orders-db', label: 'e2e backup', trigger: 'cli' },
    handlers: {
      ...localBudgetHandlers(options.budget),
      [states.prepare]: (input) => {
        startTime = (input as { executionStartTime: string }).executionStartTime;
        return prepareBackup(input) as unknown as Json;
      },
      [states.begin]: host,
      [states.snapshot]: async (input) => {
        log.snapshotStarted = performance.now();
        const result = await createSnapshots(input);
        log.snapshotReturned = performance.now();
        await options.hooks?.afterSnapshot?.(log);
        return result as unknown as Json;
      },
      [states.end]: host,
      [states.checkSnapshots]: (input) => checkSnapshots(input) as unknown as Json,
      [states.abort]: host,
      [states.deleteSnapshots]: (input) => deleteSnapshots(input) as unknown as Json,
      [states.recordSnapshots]: (input) => recordBackup(input) as unknown as Json,
      [states.markCompleted]: (input) => recordBackup(input) as unknown as Json,
      [states.markFailed]: (input) => recordBackup(input) as unknown as Json,
      ...options.handlers?.(log),
    },
  });
  // backupId is the name given, as pgsnap backup start gives it; a test naming the execution otherwise derives it.
  return { run, log, backupId: executionName, ...(startTime !== undefined ? { startTime } : {}) };
}

function abortLines(): number {
  return cluster.log().split(backupAbortedLogLine).length - 1;
}

/** Not in backup mode: no pgsnap session on the server, and the agent reports nothing in progress. */
async function expectBackupModeLeft(): Promise<void> {
  await expect.poll(() => pgsnapSessions(cluster), { timeout: 10_000 }).toEqual([]);
  const status = await pgsnap(['status', '--cluster', 'orders-db', '--json'], env);
  expect(status.json).toMatchObject({ inProgress: false });
}

async function manifestOf(backupId: string) {
  const repository = await repo.open();
  try {
    return await repository.readManifest(backupId);
  } finally {
    repository.close();
  }
}

/**
 * The backupId of an execution not named after one, worked out here by hand:
 * its start time in UTC to the second, then the first six hex digits of the
 * SHA-256 of its name.
 */
function derivedBackupId(executionName: string, startTime: string): string {
  const stamp = `${startTime.slice(0, 19).replace(/[-:]/g, '')}Z`;
  return `${stamp}-${createHash('sha256').update(executionName).digest('hex').slice(0, 6)}`;
}

function snapshotsOf(backupId: string) {
  return [...ec2.snapshots.values()].filter((s) =>
    s.Tags.some((t) => t.Key === 'pgsnap:backup-id' && t.Value === backupId),
  );
}

describe('a backup through the synthesized state machine', () => {
  test('succeeds: snapshots of exactly the cluster volumes, backup mode left, completion announced', async () => {
    ec2.reset({ completeAfterPolls: 3 });
    const { run, log, backupId } = await backup();
    expect(run.failure).toBeUndefined();
    expect(log.commands).toEqual(['begin', 'end']);
    // The agent answered both steps itself, with the execution's task token.
    expect(stepFunctions.calls.filter((c) => c.action === 'SendTaskSuccess')).toEqual([
      { action: 'SendTaskSuccess', taskToken },
      { action: 'SendTaskSuccess', taskToken },
    ]);
    const snapshots = snapshotsOf(backupId);
    expect(snapshots.map((s) => [s.VolumeId, s.State])).toEqual([
      [volumes.data, 'completed'],
      [volumes.wal, 'completed'],
    ]);
    expect(run.events).toEqual([
      {
        detailType: 'pgsnap backup completed',
        detail: expect.objectContaining({
          cluster: 'orders-db',
          backupId,
          label: 'e2e backup',
          startLsn: log.beginResult!.startLsn,
          stopLsn: expect.stringMatching(/^[0-9A-F]+\/[0-9A-F]+$/),
          snapshots: expect.arrayContaining([expect.objectContaining({ volumeId: volumes.wal })]),
        }),
      },
    ]);
    // The fleet's count, without the Cluster dimension (the manifest and the event name the cluster).
    expect(run.metrics).toStrictEqual([{ name: 'BackupCompleted', value: 1 }]);
    const manifest = await manifestOf(backupId);
    expect(manifest).toMatchObject({
      state: 'completed',
      startLsn: log.beginResult!.startLsn,
      snapshots: snapshots.map((s) => ({ provider: 'ebs', snapshotId: s.SnapshotId, state: 'completed' })),
    });
    expect(manifest!.artifacts.map((a) => a.name)).toContain('backup_label');
    // End ran as soon as the snapshot ids were in the manifest, before any snapshot was completed.
    const end = run.entered.indexOf(states.end);
    expect(run.entered.slice(end - 2, end + 2)).toEqual([
      states.snapshot,
      states.recordSnapshots,
      states.end,
      states.checkSnapshots,
    ]);
    await expectBackupModeLeft();

    const inBackupMode = log.endReturned! - log.beginReturned!;
    const snapshotStep = log.snapshotReturned! - log.snapshotStarted!;
    console.log(
      `time in backup mode (begin returned → end returned): ${inBackupMode.toFixed(0)} ms, ` +
        `of which the snapshot step: ${snapshotStep.toFixed(0)} ms; ` +
        `${run.entered.length} states entered, ${run.entered.filter((s) => s === states.checkSnapshots).length} polls`,
    );
  });

  test("started from the console under the console's default name (a UUID): completed, under a backupId derived from the execution", async () => {
    ec2.reset({ completeAfterPolls: 2 });
    const executionName = randomUUID();
    // What an operator pastes into the console's input box.
    const { run, log, startTime } = await backup({ executionName, input: { cluster: 'orders-db' } });
    expect(run.failure).toBeUndefined();
    const backupId = derivedBackupId(executionName, startTime!);
    expect(run.output).toMatchObject({ backupId, trigger: 'console', label: 'on-demand' });
    expect(log.commands).toEqual(['begin', 'end']);
    // The host held the backup under that backupId (the agent wrote the manifest), EC2 tagged the snapshots with it.
    expect(await manifestOf(backupId)).toMatchObject({ backupId, state: 'completed', label: 'on-demand' });
    expect(snapshotsOf(backupId).map((s) => [s.VolumeId, s.State])).toEqual([
      [volumes.data, 'completed'],
      [volumes.wal, 'completed'],
    ]);
    expect(run.events).toEqual([
      {
        detailType: 'pgsnap backup completed',
        detail: expect.objectContaining({ backupId, trigger: 'console' }),
      },
    ]);
    await expectBackupModeLeft();
  });

  test('begin fails: nothing is snapshotted and the failure is announced with its reason', async () => {
    ec2.reset({ completeAfterPolls: 1 });
    // No archiving configured: the agent's preflight refuses to start a backup.
    await cluster.query("ALTER SYSTEM SET archive_command = ''");
    await cluster.query('SELECT pg_reload_conf()');
    try {
      const { run, log, backupId } = await backup();
      expect(run.failure).toMatchObject({
        error: 'PreconditionError',
        cause: expect.stringMatching(/archiv/),
      });
      expect(log.commands).toEqual(['begin', 'abort']);
      expect(ec2.calls).not.toContain('CreateSnapshots');
      expect(snapshotsOf(backupId)).toEqual([]);
      expect(run.events).toEqual([
        {
          detailType: 'pgsnap backup failed',
          detail: expect.objectContaining({ backupId, error: 'PreconditionError', cleanup: { deleted: [] } }),
        },
      ]);
      expect(run.metrics).toStrictEqual([{ name: 'BackupFailed', value: 1 }]);
      // The backup never started, so it was never catalogued.
      expect(await manifestOf(backupId)).toBeUndefined();
    } finally {
      await cluster.query('ALTER SYSTEM RESET archive_command');
      await cluster.query('SELECT pg_reload_conf()');
    }
    await expectBackupModeLeft();
  });

  test('CreateSnapshots fails: the host aborts the backup and the failure names EC2’s error', async () => {
    ec2.reset({
      completeAfterPolls: 1,
      createFails: Object.assign(new Error('Maximum number of snapshots reached'), {
        name: 'SnapshotLimitExceeded',
      }),
    });
    const aborted = abortLines();
    const { run, log, backupId } = await backup();
    expect(run.failure).toMatchObject({ error: 'SnapshotLimitExceeded' });
    expect(log.commands).toEqual(['begin', 'abort']);
    expect(snapshotsOf(backupId)).toEqual([]);
    expect(run.events.map((e) => [e.detailType, e.detail.error])).toEqual([
      ['pgsnap backup failed', 'SnapshotLimitExceeded'],
    ]);
    expect(await manifestOf(backupId)).toMatchObject({
      state: 'failed',
      failure: {
        reason: expect.stringContaining('SnapshotLimitExceeded: Maximum number of snapshots reached'),
      },
    });
    await expectBackupModeLeft();
    expect(abortLines()).toBe(aborted + 1);
  });

  test('a snapshot ends in error: every snapshot of the set is deleted and the failure names the snapshot', async () => {
    ec2.reset({ completeAfterPolls: 3, errorOn: { volumeId: volumes.wal, atPoll: 2 } });
    const { run, log, backupId } = await backup();
    expect(run.failure).toMatchObject({
      error: 'SnapshotFailedError',
      cause: expect.stringContaining(`of volume ${volumes.wal} is in state error`),
    });
    // Backup mode had already ended normally: there is nothing to abort on the host.
    expect(log.commands).toEqual(['begin', 'end']);
    expect(snapshotsOf(backupId)).toEqual([]);
    expect(run.events).toEqual([
      {
        detailType: 'pgsnap backup failed',
        detail: expect.objectContaining({
          backupId,
          error: 'SnapshotFailedError',
          cleanup: { deleted: [expect.stringMatching(/^snap-/), expect.stringMatching(/^snap-/)] },
        }),
      },
    ]);
    expect(await manifestOf(backupId)).toMatchObject({
      state: 'failed',
      failure: { reason: expect.stringMatching(/^SnapshotFailedError: .* is in state error/) },
    });
    await expectBackupModeLeft();
  });

  test('end fails (the backup session was terminated): snapshots deleted, failure says the backup is not valid', async () => {
    ec2.reset({ completeAfterPolls: 1 });
    const aborted = abortLines();
    const { run, log, backupId } = await backup({
      hooks: {
        afterSnapshot: async () => {
          await cluster.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'pgsnap:%'",
          );
          await expect.poll(() => pgsnapSessions(cluster)).toEqual([]);
        },
      },
    });
    expect(run.failure).toMatchObject({
      error: 'BackupInvalidError',
      cause: expect.stringContaining('not valid'),
    });
    expect(log.commands).toEqual(['begin', 'end', 'abort']);
    expect(snapshotsOf(backupId)).toEqual([]);
    expect(run.events.map((e) => [e.detailType, e.detail.error])).toEqual([
      ['pgsnap backup failed', 'BackupInvalidError'],
    ]);
    expect(await manifestOf(backupId)).toMatchObject({
      state: 'failed',
      failure: { reason: expect.stringContaining('BackupInvalidError') },
    });
    await expectBackupModeLeft();
    expect(abortLines()).toBe(aborted + 1);
  });

  test('the holder dies while holding: PostgreSQL aborts the backup, snapshots deleted, failure announced', async () => {
    ec2.reset({ completeAfterPolls: 1 });
    const aborted = abortLines();
    const { run, log, backupId } = await backup({
      hooks: {
        afterSnapshot: async (hostLog) => {
          process.kill(hostLog.beginResult!.holderPid as number, 'SIGKILL');
          await expect.poll(() => pgsnapSessions(cluster)).toEqual([]);
        },
      },
    });
    expect(run.failure?.error).toBe('BackupInvalidError');
    expect(log.commands).toEqual(['begin', 'end', 'abort']);
    expect(snapshotsOf(backupId)).toEqual([]);
    expect(run.events.map((e) => e.detail.error)).toEqual(['BackupInvalidError']);
    expect(await manifestOf(backupId)).toMatchObject({ state: 'failed' });
    await expectBackupModeLeft();
    expect(abortLines()).toBe(aborted + 1);
  });

  test('end times out: the host is told to abort, snapshots deleted, the failure is States.Timeout', async () => {
    ec2.reset({ completeAfterPolls: 1 });
    const aborted = abortLines();
    const { run, log, backupId } = await backup({
      definition: impatientDefinition,
      // The host never answers end (SSM agent hung, instance unreachable): the task token is never returned.
      handlers: (hostLog) => ({
        [states.end]: () => {
          hostLog.commands.push('end (no answer)');
          return new Promise<Json>(() => {});
        },
      }),
    });
    expect(run.failure).toMatchObject({ error: 'States.Timeout' });
    expect(log.commands).toEqual(['begin', 'end (no answer)', 'abort']);
    expect(snapshotsOf(backupId)).toEqual([]);
    expect(run.events.map((e) => [e.detailType, e.detail.error])).toEqual([
      ['pgsnap backup failed', 'States.Timeout'],
    ]);
    expect(await manifestOf(backupId)).toMatchObject({
      state: 'failed',
      failure: { reason: expect.stringContaining('States.Timeout') },
    });
    await expectBackupModeLeft();
    expect(abortLines()).toBe(aborted + 1);
  });

  test('another backup of the cluster is held on the host: begin is refused, the execution leaves it to that backup, touching nothing and asking Step Functions nothing', async () => {
    ec2.reset({ completeAfterPolls: 1 });
    const aborted = abortLines();
    // A manual begin (or pgsnap run from cron) on the host, outside Step Functions.
    const operatorFlags = ['--cluster', 'orders-db', '--repo', repo.url, '--json'];
    const begun = await pgsnap(['begin', '--label', 'operator nightly', '--fast', ...operatorFlags], env);
    expect(begun.code, begun.stderr).toBe(0);
    const operatorBackupId = begun.json!.backupId as string;
    try {
      const { run, log, backupId } = await backup();
      expect(run.failure).toBeUndefined();
      expect(run.entered.at(-1)).toBe(states.leaveToRunning);
      expect(run.output).toMatchObject({
        running: {
          Error: 'BackupInProgressError',
          Cause: expect.stringContaining(
            `backup ${operatorBackupId} (label "operator nightly") is in progress`,
          ),
        },
      });
      // Nothing was begun for this execution, so nothing is cleaned up: no abort, no snapshot, no event.
      expect(log.commands).toEqual(['begin']);
      expect(stepFunctions.calls.map((c) => c.action).filter((a) => a !== 'SendTaskHeartbeat')).toEqual([
        'SendTaskFailure',
      ]);
      expect(ec2.calls).toEqual([]);
      expect(run.events).toEqual([]);
      expect(await manifestOf(backupId)).toBeUndefined();
      // Nobody asked Step Functions which executions run.
      expect(sfn.calls()).toEqual([]);

      // The operator's backup is untouched: its session is held, the server logged no abort, status shows it.
      expect(await pgsnapSessions(cluster)).toEqual([
        { pid: begun.json!.serverPid, app: `pgsnap:${operatorBackupId}` },
      ]);
      expect(abortLines()).toBe(aborted);
      const status = await pgsnap(['status', '--cluster', 'orders-db', '--json'], env);
      expect(status.json).toMatchObject({ inProgress: true, state: 'in-backup', backupId: operatorBackupId });
      expect(await manifestOf(operatorBackupId)).toMatchObject({ state: 'started' });

      // And it ends normally afterwards, naming the snapshot the operator took: complete in the repository.
      const ended = await pgsnap(['end', '--snapshot', 'operator-snapshot-1', ...operatorFlags], env);
      expect(ended.code, ended.stderr).toBe(0);
      expect(ended.json).toMatchObject({ backupId: operatorBackupId, label: 'operator nightly' });
      expect(await manifestOf(operatorBackupId)).toMatchObject({ state: 'completed' });
    } finally {
      // The next test needs the host free, whatever failed above; nothing to do once end succeeded.
      await pgsnap(['abort', '--backup-id', operatorBackupId, ...operatorFlags], env);
    }
    await expectBackupModeLeft();
    expect(abortLines()).toBe(aborted);
  });

  test('CreateSnapshots refused for throttling, then for pending snapshots: retried with jitter, the backup completes in its window', async () => {
    const refused = (name: string) => Object.assign(new Error(`${name} (e2e)`), { name });
    ec2.reset({
      completeAfterPolls: 1,
      createRefusals: [refused('RequestLimitExceeded'), refused('PendingSnapshotLimitExceeded')],
    });
    const { run, log, backupId } = await backup();
    expect(run.failure).toBeUndefined();
    expect(run.entered).toContain(states.markCompleted);
    expect(ec2.calls.filter((c) => c === 'CreateSnapshots')).toHaveLength(3);
    // One set of snapshots, of exactly the cluster's volumes.
    expect([...ec2.snapshots.values()].map((s) => s.VolumeId).sort()).toEqual([volumes.data, volumes.wal]);
    const manifest = await manifestOf(backupId);
    expect(manifest).toMatchObject({ state: 'completed' });
    // The window the host enforces is the configured one, and the retries stayed far inside it:
    // two full-jitter waits of at most 2 s and 4 s.
    expect(log.commands).toEqual(['begin', 'end']);
    const window = log.endReturned! - log.beginReturned!;
    expect(window).toBeLessThan(30_000);
    await expectBackupModeLeft();
  });
});
