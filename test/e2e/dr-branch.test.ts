/**
 * The synthesized state machine with DR copies and retention, run locally
 * with aws-local-stepfunctions: the Lambda steps are the real handlers over an
 * in-memory EC2/KMS/STS that tells regions and accounts apart, and file://
 * repositories for the source and DR. The host steps are stand-ins that write
 * what the agent writes (the started and stopped manifest, backup_label):
 * the agent itself is exercised by backup-state-machine.test.ts. Each run is
 * judged as an operator would: the outcome, the events, both manifests, and
 * the snapshots left in each account and region.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteSnapshotCommand, EC2Client } from '@aws-sdk/client-ec2';
import { SFNClient } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { MemoryBudgetStore } from '#domain/budget/semaphore';
import { recordDrBackup } from '#domain/ebs/record-dr-backup';
import type { RetentionSummary } from '#domain/ebs/retention';
import { newBackupId } from '#domain/ids';
import type { Manifest } from '#domain/repository/manifest';
import { openRepository } from '#domain/repository/open';
import type { Repository } from '#domain/repository/repository';
import { handler as applyRetention, applyRetentionHandler } from '../../functions/apply-retention.ts';
import { handler as checkCopies } from '../../functions/check-copies.ts';
import { handler as checkSnapshots } from '../../functions/check-snapshots.ts';
import { handler as copySnapshots } from '../../functions/copy-snapshots.ts';
import { handler as createSnapshots } from '../../functions/create-snapshots.ts';
import { handler as deleteSnapshots } from '../../functions/delete-snapshots.ts';
import { handler as prepareBackup } from '../../functions/prepare-backup.ts';
import { handler as recordBackup } from '../../functions/record-backup.ts';
import { handler as recordCopies } from '../../functions/record-copies.ts';
import { states } from '../../infra/backup/state-names.ts';
import type { EnvironmentInput } from '../../infra/config/config.ts';
import { budgetTokens, localBudgetHandlers, setLocalBudgetEnvironment } from '../../local/snapshot-budget.ts';
import {
  type Json,
  type LocalBackupRun,
  runLocalBackup,
  setLocalCatalog,
  type TaskHandler,
} from '../../local/state-machine.ts';
import { stateMachineDefinition, synthStack } from '../support/backup-stack.ts';
import { FakeDrAws } from '../support/fake-dr-aws.ts';
import { testManifest } from '../support/manifests.ts';

const instanceId = 'i-0123456789abcdef0';
const source = {
  account: '111122223333',
  region: 'eu-west-1',
  accessKeyId: 'AKIASOURCE',
  keyArn: 'arn:aws:kms:eu-west-1:111122223333:key/1111',
};
const dr = { account: '444455556666', region: 'us-west-2', accessKeyId: 'ASIADR' };
const stateMachineArn = 'arn:aws:states:eu-west-1:111122223333:stateMachine:pgsnap-e2e-backup';
const volumes = { data: 'vol-0000000000000000b', wal: 'vol-0000000000000000c' };

const environment: EnvironmentInput = {
  name: 'e2e',
  account: source.account,
  region: source.region,
  clusters: [
    {
      name: 'orders-db',
      instance: { instanceId },
      volumeIds: [volumes.data, volumes.wal],
      retention: { keepLast: 1 },
    },
  ],
  dr: { account: dr.account, region: dr.region, externalId: 'pgsnap-e2e-5c1d8e2a' },
};
const definition = stateMachineDefinition(synthStack(environment).template);

const aws = new FakeDrAws(source, dr, instanceId, [
  { volumeId: 'vol-0000000000000000a', device: '/dev/xvda' },
  { volumeId: volumes.data, device: '/dev/sdf' },
  { volumeId: volumes.wal, device: '/dev/sdg' },
]);
const sfn = mockClient(SFNClient);

let dir: string;
let sourceUrl: string;
let drUrl: string;

const identity = { systemIdentifier: '7311111111111111111', walSegmentSize: 16 * 1024 * 1024 };

function manifestOf(backupId: string, state: Manifest['state'], extra: Partial<Manifest> = {}): Manifest {
  const now = new Date().toISOString();
  return testManifest({
    backupId,
    label: 'e2e',
    state,
    ...identity,
    timings: { startedAt: now },
    updatedAt: now,
    ...extra,
  });
}

/**
 * What `pgsnap begin` and `pgsnap end` do with a task token: the host pins the
 * cluster and stores WAL and artifacts (write-once), writes no manifest, and
 * proposes what it started and stopped; the orchestrator records the manifest.
 */
const host: TaskHandler = async (input): Promise<Json> => {
  const parameters = (input as { Parameters: Record<string, string[]> }).Parameters;
  const command = parameters.command![0]!;
  const backupId = parameters.backupId![0]!;
  const repository = await openRepository(sourceUrl, 'orders-db');
  try {
    if (command === 'begin') {
      const pin = await repository.pin(identity, 'e2e');
      await repository.pushWal(pin, '000000010000000000000002', Buffer.alloc(identity.walSegmentSize));
      return {
        backupId,
        label: 'e2e',
        startLsn: '0/2000028',
        startWalFile: '000000010000000000000002',
        timeline: 1,
        systemIdentifier: identity.systemIdentifier,
        serverVersion: '17.2',
        startedAt: new Date().toISOString(),
        backupFrom: 'primary',
      };
    }
    if (command === 'end') {
      const label = await repository.putArtifact(
        backupId,
        'backup_label',
        Buffer.from(
          `START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\n`,
        ),
      );
      return {
        backupId,
        stopLsn: '0/2000138',
        stopWalFile: '000000010000000000000002',
        stopTimeline: 1,
        stoppedAt: new Date().toISOString(),
        archiveWaitMs: 0,
        artifacts: [label],
      };
    }
    return {};
  } finally {
    repository.close();
  }
};

const invoke =
  (fn: (event: unknown) => Promise<unknown>): TaskHandler =>
  async (input) =>
    (await fn(input)) as Json;

interface DrRun {
  run: LocalBackupRun;
  backupId: string;
  events: Array<{ detailType: string; detail: Record<string, Json> }>;
  metrics: string[];
}

interface BackupOptions {
  /** The budgets' store, shared by backups that compete for a share. */
  budget?: MemoryBudgetStore;
  /** Handlers that stand in for the usual ones. */
  handlers?: Partial<Record<string, TaskHandler>>;
}

async function backup(backupId = newBackupId(), options: BackupOptions = {}): Promise<DrRun> {
  const events: DrRun['events'] = [];
  const metrics: string[] = [];
  const run = await runLocalBackup(definition, {
    executionName: backupId,
    stateMachineArn,
    input: { cluster: 'orders-db', label: 'e2e', trigger: 'cli' },
    handlers: {
      ...localBudgetHandlers(options.budget),
      [states.prepare]: invoke(prepareBackup),
      [states.begin]: host,
      [states.snapshot]: invoke(createSnapshots),
      [states.recordSnapshots]: invoke(recordBackup),
      [states.end]: host,
      [states.checkSnapshots]: invoke(checkSnapshots),
      [states.markCompleted]: invoke(recordBackup),
      [states.abort]: host,
      [states.deleteSnapshots]: invoke(deleteSnapshots),
      [states.markFailed]: invoke(recordBackup),
      [states.copy]: invoke(copySnapshots),
      [states.checkCopies]: invoke(checkCopies),
      [states.recordCopies]: invoke(recordCopies),
      [states.recordFailedCopies]: invoke(recordCopies),
      [states.countCopyFailed]: (input) => {
        for (const datum of (input as { MetricData: Array<{ MetricName: string }> }).MetricData) {
          metrics.push(datum.MetricName);
        }
        return {};
      },
      [states.announceCopyFailed]: (input) => {
        for (const entry of (input as { Entries: Array<{ DetailType: string; Detail: unknown }> }).Entries) {
          const detail = typeof entry.Detail === 'string' ? JSON.parse(entry.Detail) : entry.Detail;
          events.push({ detailType: entry.DetailType, detail });
        }
        return {};
      },
      [states.applyRetention]: invoke(applyRetention),
      ...options.handlers,
    },
  });
  if (run.entered.includes(states.copy)) await recordInDr(backupId);
  return {
    run,
    backupId,
    events: [...run.events, ...events],
    metrics: [...run.metrics.map((m) => m.name), ...metrics],
  };
}

/**
 * What the DR account's EventBridge rule does when EBS ends the copies: the DR stack's recorder writes the
 * DR manifest from the copies the DR account sees (the source writes none), with the DR account's own
 * credentials in the DR region.
 */
async function recordInDr(backupId: string): Promise<void> {
  const drEc2 = new EC2Client({
    region: dr.region,
    credentials: { accessKeyId: dr.accessKeyId, secretAccessKey: 'secret' },
  });
  const repository = await openRepository(drUrl, 'orders-db');
  try {
    await recordDrBackup(drEc2, repository, { backupId, account: dr.account, region: dr.region });
  } finally {
    repository.close();
    drEc2.destroy();
  }
}

async function read(url: string, backupId: string): Promise<Manifest | undefined> {
  const repository = await openRepository(url, 'orders-db');
  try {
    return await repository.readManifest(backupId);
  } finally {
    repository.close();
  }
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'pgsnap-dr-e2e-'));
  mkdirSync(join(dir, 'source'));
  mkdirSync(join(dir, 'dr'));
  sourceUrl = `file://${dir}/source`;
  drUrl = `file://${dir}/dr`;
  aws.reset();
  sfn.reset();
  process.env.AWS_ACCESS_KEY_ID = source.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = 'secret';
  process.env.AWS_REGION = source.region;
  setLocalCatalog({
    clusters: [
      {
        name: 'orders-db',
        instanceId,
        volumeIds: [volumes.data, volumes.wal],
        fastCheckpoint: false,
        maxBackupMinutes: 60,
        repository: sourceUrl,
        retention: { keepLast: 1, schedule: 'rate(1 day)' },
      },
    ],
  });
  process.env.PGSNAP_FIRST_POLL_SECONDS = '15';
  process.env.PGSNAP_MAX_POLL_SECONDS = '300';
  process.env.PGSNAP_SNAPSHOT_HOURS = '24';
  setLocalBudgetEnvironment();
  process.env.PGSNAP_COPY_HOURS = '24';
  process.env.PGSNAP_DR = JSON.stringify({
    sourceAccount: source.account,
    sourceRegion: source.region,
    account: dr.account,
    region: dr.region,
    kmsKeyArn: `arn:aws:kms:${dr.region}:${dr.account}:alias/pgsnap-e2e-dr`,
    roleArn: `arn:aws:iam::${dr.account}:role/pgsnap-e2e-dr-copy`,
    externalId: 'pgsnap-e2e-5c1d8e2a',
    clusters: { 'orders-db': { repository: drUrl } },
  });
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('DR copies in the backup workflow', () => {
  test('a completed backup is copied into the DR account, recorded on both sides, and nothing stays shared', async () => {
    const { run, backupId, events } = await backup();
    expect(run.failure).toBeUndefined();
    expect(run.entered).toContain(states.recordCopies);
    expect(run.entered.at(-2)).toBe(states.applyRetention);

    const copies = aws.in(dr.region, dr.account);
    expect(copies).toHaveLength(2);
    expect(copies.every((c) => c.State === 'completed' && c.KmsKeyId?.includes(`:${dr.account}:`))).toBe(
      true,
    );
    const sourceManifest = (await read(sourceUrl, backupId))!;
    expect(sourceManifest.state).toBe('completed');
    expect(sourceManifest.copies?.map((c) => [c.account, c.region, c.state])).toEqual([
      [dr.account, dr.region, 'completed'],
      [dr.account, dr.region, 'completed'],
    ]);
    const drManifest = (await read(drUrl, backupId))!;
    expect(drManifest.state).toBe('completed');
    expect(drManifest.snapshots.map((s) => s.snapshotId).sort()).toEqual(
      copies.map((c) => c.SnapshotId).sort(),
    );

    // The sharing and the KMS grant were only for the copy.
    expect(aws.in(source.region, source.account).every((s) => s.sharedWith.size === 0)).toBe(true);
    expect(aws.grants.size).toBe(0);
    expect(events.map((e) => e.detailType)).toEqual(['pgsnap backup completed']);
  });

  test('a copy in error leaves the backup completed, leaves the failed copies to DR retention, and raises its own event and metric', async () => {
    aws.reset({ copyFails: true });
    const { run, backupId, events, metrics } = await backup();
    expect(run.failure).toBeUndefined();
    expect(run.entered).toContain(states.recordFailedCopies);
    expect(events.map((e) => e.detailType)).toEqual(['pgsnap backup completed', 'pgsnap copy failed']);
    expect(events[1]!.detail).toMatchObject({ backupId, error: 'CopyFailedError' });
    expect(metrics).toContain('CopyFailed');
    expect(metrics).not.toContain('BackupFailed');

    const sourceManifest = (await read(sourceUrl, backupId))!;
    expect(sourceManifest.state).toBe('completed');
    expect(sourceManifest.copies?.map((c) => c.state)).toEqual(['failed', 'failed']);
    // The source account deletes nothing in DR: the DR stack's recorder names the copies in error in a
    // failed DR manifest, for DR retention.
    const failedCopies = aws.in(dr.region, dr.account);
    expect(failedCopies.map((c) => c.State)).toEqual(['error', 'error']);
    const drManifest = (await read(drUrl, backupId))!;
    expect(drManifest.state).toBe('failed');
    expect(drManifest.snapshots.map((s) => s.snapshotId).sort()).toEqual(
      failedCopies.map((c) => c.SnapshotId).sort(),
    );
    // The source snapshots are the backup: they stay, and are no longer shared.
    expect(aws.in(source.region, source.account).map((s) => s.sharedWith.size)).toEqual([0, 0]);
    expect(aws.grants.size).toBe(0);
  });

  test('DR retention, run as the DR account, deletes the failed copies once a later copy completes, and keeps that one', async () => {
    aws.reset({ copyFails: true });
    // A minute apart: backupIds sort by their start, to the second.
    const failed = await backup(newBackupId(new Date(Date.now() - 60_000)));
    aws.behaviour = {};
    const good = await backup();
    expect(good.run.failure).toBeUndefined();
    expect((await read(drUrl, good.backupId))?.state).toBe('completed');
    expect(aws.in(dr.region, dr.account)).toHaveLength(4);

    // The DR stack's retention Lambda: the DR account's own credentials, in the DR region, and the DR
    // stack's catalog.
    setLocalCatalog({
      clusters: [
        {
          name: 'orders-db',
          volumeIds: [],
          fastCheckpoint: false,
          maxBackupMinutes: 60,
          repository: drUrl,
          retention: { keepLast: 1, schedule: 'rate(1 day)' },
        },
      ],
    });
    const drEc2 = new EC2Client({
      region: dr.region,
      credentials: { accessKeyId: dr.accessKeyId, secretAccessKey: 'secret' },
    });
    const outcome = (await applyRetentionHandler(drEc2)({
      cluster: 'orders-db',
      repository: drUrl,
    })) as RetentionSummary;
    drEc2.destroy();
    expect(outcome.removed).toEqual([failed.backupId]);
    expect(outcome.kept).toEqual([good.backupId]);
    expect(await read(drUrl, failed.backupId)).toBeUndefined();
    const left = aws.in(dr.region, dr.account);
    expect(left.map((c) => c.State)).toEqual(['completed', 'completed']);
    expect(left.map((c) => c.SnapshotId).sort()).toEqual(
      (await read(drUrl, good.backupId))!.snapshots.map((s) => s.snapshotId).sort(),
    );
    // Every delete in DR, over both backups, was the DR Lambda's (the DR account's own credentials, no
    // session token), none the source's nor the role the source assumes (whose credentials carry one).
    const drDeletes = await Promise.all(
      aws.ec2.commandCalls(DeleteSnapshotCommand).map(async (call) => {
        const client = call.thisValue as EC2Client;
        const credentials = await client.config.credentials();
        return [await client.config.region(), credentials.accessKeyId, credentials.sessionToken];
      }),
    );
    expect(drDeletes.filter(([region]) => region === dr.region)).toEqual([
      [dr.region, dr.accessKeyId, undefined],
      [dr.region, dr.accessKeyId, undefined],
    ]);
  });
});

describe('the DR copy queue', () => {
  // One volume per backup, one copy at a time: each backup's copy takes the whole budget.
  const oneVolume = () => {
    setLocalBudgetEnvironment(90, 1);
    setLocalCatalog({
      clusters: [
        {
          name: 'orders-db',
          instanceId,
          volumeIds: [volumes.data],
          fastCheckpoint: false,
          maxBackupMinutes: 60,
          repository: sourceUrl,
          // Both backups stay, to be looked at.
          retention: { keepLast: 2, schedule: 'rate(1 day)' },
        },
      ],
    });
  };

  test('with a copy budget of one, the second backup waits in the queue and is woken by the first copy returning its share', async () => {
    oneVolume();
    const budget = new MemoryBudgetStore();
    const shares = localBudgetHandlers(budget);
    const log: string[] = [];
    const first = newBackupId(new Date(Date.now() - 60_000));
    const second = newBackupId();
    const asks = { first: 0, second: 0 };
    const who = (input: unknown) => {
      const payload =
        (input as { Payload?: { backupId: string } }).Payload ?? (input as { backupId: string });
      return payload.backupId === first ? 'first' : 'second';
    };
    const logged =
      (what: string, handle: TaskHandler, asking: boolean): TaskHandler =>
      async (input) => {
        // A take is logged once it is answered; a return as it starts (it wakes the waiter before it ends).
        if (asking) asks[who(input)]++;
        else log.push(`${what} ${who(input)}`);
        const result = await handle(input);
        if (asking) log.push(`${what} ${who(input)}`);
        return result;
      };
    const handlers = {
      [states.acquireCopies]: logged('took', shares[states.acquireCopies], true),
      [states.releaseCopies]: logged('returned', shares[states.releaseCopies], false),
    };
    const waiting = async () => {
      for (;;) {
        if ((await budget.read('copies#local'))?.record.waiters?.[second]) return;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    let secondRun: Promise<DrRun> | undefined;
    const firstRun = await backup(first, {
      budget,
      handlers: {
        ...handlers,
        // While the first copy runs, the second backup completes and joins the queue.
        [states.checkCopies]: async (input) => {
          if (!secondRun) {
            secondRun = backup(second, { budget, handlers });
            await waiting();
          }
          return invoke(checkCopies)(input);
        },
      },
    });
    const secondDone = await secondRun!;

    expect(firstRun.run.failure).toBeUndefined();
    expect(secondDone.run.failure).toBeUndefined();
    expect(log).toEqual(['took first', 'returned first', 'took second', 'returned second']);
    // Asked once and woken by the return: no second ask, no timeout.
    expect(asks).toEqual({ first: 1, second: 1 });
    // The copy budget's answers (the snapshot budget's, limit 90, answered each backup's own take at once).
    const copyAnswers = budgetTokens(budget).answered.filter(
      (a) => (a.output as { limit: number }).limit === 1,
    );
    expect(copyAnswers.map((a) => a.output)).toEqual([
      { units: 1, held: 1, limit: 1 },
      { units: 1, held: 1, limit: 1 },
    ]);
    for (const backupId of [first, second]) {
      const manifest = (await read(sourceUrl, backupId))!;
      expect(manifest.copies?.map((c) => c.state)).toEqual(['completed']);
      expect((await read(drUrl, backupId))?.state).toBe('completed');
    }
    expect(aws.in(dr.region, dr.account).map((c) => c.State)).toEqual(['completed', 'completed']);
    expect((await budget.read('copies#local'))?.record).toEqual({ held: 0, leases: {} });
  });

  test('a failed copy returns its share: the next backup copies without waiting for a lease to lapse', async () => {
    oneVolume();
    const budget = new MemoryBudgetStore();
    aws.reset({ copyFails: true });
    const failed = await backup(newBackupId(new Date(Date.now() - 60_000)), { budget });
    expect(failed.run.failure).toBeUndefined();
    expect(failed.run.entered).toContain(states.releaseCopiesOnFailure);
    expect((await read(sourceUrl, failed.backupId))?.copies?.map((c) => c.state)).toEqual(['failed']);
    expect((await budget.read('copies#local'))?.record).toEqual({ held: 0, leases: {} });

    aws.behaviour = {};
    const next = await backup(newBackupId(), { budget });
    expect(next.run.failure).toBeUndefined();
    expect(next.run.entered.filter((s) => s === states.acquireCopies)).toHaveLength(1);
    expect((await read(drUrl, next.backupId))?.state).toBe('completed');
  });
});

/** A completed backup as the orchestrator leaves it: its manifest, and the backup_label it started from. */
async function writeWithLabel(repository: Repository, manifest: Manifest): Promise<void> {
  const label = await repository.putArtifact(
    manifest.backupId,
    'backup_label',
    Buffer.from(
      `START WAL LOCATION: ${manifest.startLsn} (file ${manifest.startWalFile})\nCHECKPOINT LOCATION: 0/2000060\n`,
    ),
  );
  await repository.writeManifest({ ...manifest, artifacts: [label] });
}

describe('retention at the end of the workflow', () => {
  test('a backup past the policy whose snapshot is locked stays and is reported, and the workflow succeeds', async () => {
    const older = '20200101T000000Z-0000aa';
    const repository = await openRepository(sourceUrl, 'orders-db');
    await repository.pin(identity, 'e2e');
    await writeWithLabel(
      repository,
      manifestOf(older, 'completed', {
        snapshots: [
          { provider: 'ebs', snapshotId: 'snap-locked', volumeId: volumes.data, state: 'completed' },
        ],
        timings: { startedAt: '2020-01-01T00:00:00.000Z', completedAt: '2020-01-01T00:10:00.000Z' },
      }),
    );
    const evenOlder = '20190101T000000Z-0000bb';
    await writeWithLabel(
      repository,
      manifestOf(evenOlder, 'completed', {
        snapshots: [
          { provider: 'ebs', snapshotId: 'snap-unlocked', volumeId: volumes.data, state: 'completed' },
        ],
        timings: { startedAt: '2019-01-01T00:00:00.000Z', completedAt: '2019-01-01T00:10:00.000Z' },
      }),
    );
    repository.close();
    // Tagged as CreateSnapshots tags every snapshot it takes: retention checks the tags against the manifest.
    const tags = (id: string) => [
      { Key: 'pgsnap:cluster', Value: 'orders-db' },
      { Key: 'pgsnap:backup-id', Value: id },
    ];
    aws.add({
      SnapshotId: 'snap-locked',
      region: source.region,
      owner: source.account,
      locked: true,
      Tags: tags(older),
    });
    aws.add({
      SnapshotId: 'snap-unlocked',
      region: source.region,
      owner: source.account,
      Tags: tags(evenOlder),
    });

    const { run, backupId } = await backup();
    expect(run.failure).toBeUndefined();
    const output = run.output as { retention?: Record<string, Json>; retentionError?: Json };
    expect(output.retentionError).toBeUndefined();
    expect(output.retention).toMatchObject({
      removed: [evenOlder],
      lockedSnapshots: [{ backupId: older, snapshotIds: ['snap-locked'] }],
    });
    expect(await read(sourceUrl, older)).toBeDefined();
    expect(await read(sourceUrl, evenOlder)).toBeUndefined();
    expect(aws.snapshots.has('snap-locked')).toBe(true);
    expect(aws.snapshots.has('snap-unlocked')).toBe(false);
    expect((await read(sourceUrl, backupId))?.state).toBe('completed');
  });
});
