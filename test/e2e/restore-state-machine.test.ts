/**
 * The synthesized restore state machine, run locally with every Lambda step
 * bound to its handler and EC2 answered by the local EC2 (volumes are clones
 * of the backup's snapshots), and the host's steps answered here the way the
 * agent answers them: a restore and a drill that succeed, and every failure
 * path, each ending with nothing left behind and the reason in the record.
 * (test/e2e/restore-on-host-e2e.test.ts runs the same definition with the
 * real agent and PostgreSQL.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeVolumesCommand } from '@aws-sdk/client-ec2';
import { App } from 'aws-cdk-lib';
import { afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import type { HostReport } from '#domain/repository/host-report';
import type { RestoreRecord } from '#domain/repository/restore-record';
import { environmentSchema } from '../../infra/config/config.ts';
import { DrStack } from '../../infra/dr-stack.ts';
import { HandlerFunction } from '../../infra/lambda/handler-function.ts';
import {
  agentDocumentContent,
  type SynthesizedForLocalRun,
  stateMachineDefinition,
  synthesizeForLocalRun,
} from '../../infra/local-run/synthesize.ts';
import { restoreStates as states } from '../../infra/restore/state-names.ts';
import type { awsFacts } from '../../local/aws-facts.ts';
import { runRestoreLocally } from '../../local/local-restore.ts';
import type { Json, TaskHandler } from '../../local/state-machine.ts';
import { kmsRequestsOf } from '../support/aws-requests.ts';
import { ResolvedTemplate } from '../support/cloudformation.ts';
import { IamWorld } from '../support/iam.ts';
import { backupId, completedBackup, instanceId, type RestoreFixture } from '../support/restore-fixture.ts';

let synthesized: SynthesizedForLocalRun;
/** The DR key the DR copies are under, and whether each EC2 call may use it as the DR stack's Lambdas, by the IAM evaluation. */
let drKey: { arn: string; mayUse: Record<keyof typeof awsFacts.ebsEncryption.byCall, boolean> };
/** The DR stack's restore state machine and document, as deployed in the DR account and region. */
let drSynthesized: SynthesizedForLocalRun;
beforeAll(async () => {
  const outdir = mkdtempSync(join(tmpdir(), 'pgsnap-cdk-'));
  try {
    const app = new App({ outdir: join(outdir, 'dr'), context: { 'aws:cdk:bundling-stacks': [] } });
    const dr = new DrStack(app, 'pgsnap-test-dr', {
      environment: environmentSchema.parse({
        name: 'test',
        account: '111122223333',
        region: 'eu-west-1',
        clusters: [{ name: 'orders-db', instance: { instanceId } }],
        dr: { region: 'eu-central-1', account: '444455556666', externalId: 'pgsnap-test-external-id' },
      }),
    });
    const template = app.synth().getStackByName(dr.stackName).template;
    const drPlace = { account: '444455556666', region: 'eu-central-1' };
    const resolved = new ResolvedTemplate(template, { ...drPlace, stackName: dr.stackName });
    const world = new IamWorld([resolved]);
    const roleOf = (handler: string) => {
      const fn = dr.node
        .findAll()
        .find((c): c is HandlerFunction => c instanceof HandlerFunction && c.handlerName === handler)!;
      const arn = resolved.getAtt(dr.getLogicalId(fn.role!.node.defaultChild as never), 'Arn');
      return world.roles.find((r) => r.arn === arn)!;
    };
    const arn = resolved.getAtt(dr.getLogicalId(dr.key.node.defaultChild as never), 'Arn');
    const callers = {
      CreateVolume: 'create-restore-volumes',
      AttachVolume: 'attach-restore-volumes',
      RunInstances: 'find-restore-instance',
    } as const;
    const mayUse = {} as typeof drKey.mayUse;
    for (const [call, handler] of Object.entries(callers) as Array<[keyof typeof callers, string]>) {
      const decisions = await Promise.all(
        kmsRequestsOf(call, arn, drPlace).map((request) => world.decide(roleOf(handler), request)),
      );
      mayUse[call] = decisions.every((d) => d === 'Allowed');
    }
    drKey = { arn, mayUse };
    synthesized = undefined as never;
    drSynthesized = {
      definition: undefined as never,
      agentDocument: undefined as never,
      restoreDefinition: stateMachineDefinition(template, '444455556666', 'eu-central-1', 'restore'),
      restoreDocument: agentDocumentContent(template, 'restore'),
    };
    synthesized = synthesizeForLocalRun(
      {
        name: 'test',
        account: '111122223333',
        region: 'eu-west-1',
        clusters: [{ name: 'orders-db', instance: { instanceId } }],
      },
      outdir,
    );
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
});

let fixture: RestoreFixture;
beforeEach(async () => {
  fixture = await completedBackup();
});
afterEach(() => fixture.destroy());

const report = (fields: Partial<HostReport> = {}): HostReport => ({
  mounts: [],
  pgdata: '/restored/pgdata',
  timings: {
    mountedAt: new Date().toISOString(),
    startedAt: new Date().toISOString(),
    consistentAt: new Date().toISOString(),
    targetReachedAt: new Date().toISOString(),
    acceptingAt: new Date().toISOString(),
  },
  checks: {
    consistency: { ok: true, detail: 'consistent at 0/3000100' },
    amcheck: { ok: true, detail: 'pg_amcheck: no corruption' },
    checksums: { ok: true, detail: '0 checksum failures' },
  },
  lastReplayedCommit: '2026-11-21T14:40:00.000Z',
  replayLsn: '0/3000200',
  ok: true,
  ...fields,
});

/** The host as the agent answers: what it reported, or a SendTaskFailure with the error's name. */
function host(answer: HostReport | { error: string; message: string }): Record<string, TaskHandler> {
  const restore: TaskHandler = () => {
    if ('error' in answer) throw Object.assign(new Error(answer.message), { name: answer.error });
    return answer as unknown as Json;
  };
  const teardown: TaskHandler = () => ({ unmounted: [] });
  return { [states.restoreOnHost]: restore, [states.teardown]: teardown, [states.cleanupTeardown]: teardown };
}

/** The restoreId every run of this file has (the execution's name). */
const restoreId = 'r-20261121T150000Z-0c0ffe';

function withPeeks(
  handlers: Record<string, TaskHandler>,
  peek: Record<string, () => unknown>,
): Record<string, TaskHandler> {
  return Object.fromEntries(
    Object.entries(handlers).map(([name, handler]) => [
      name,
      (async (input: Json) => {
        await peek[name]?.();
        return handler(input as never);
      }) as TaskHandler,
    ]),
  );
}

async function restore(
  input: Record<string, Json>,
  answer: Parameters<typeof host>[0],
  waitSeconds?: { volumes: number },
  definitions: SynthesizedForLocalRun = synthesized,
  /** Host steps that look at EC2 before answering as the agent would. */
  peek: Record<string, () => unknown> = {},
) {
  fixture.ec2.addInstance(otherInstance.instanceId);
  const result = await runRestoreLocally({
    synthesized: definitions,
    executionName: restoreId,
    input: { cluster: 'orders-db', ...input },
    clusters: [{ name: 'orders-db', repository: fixture.url }],
    ec2: fixture.ec2,
    agentBinDir: '/nonexistent',
    agentEnv: {},
    detail: () => {},
    override: withPeeks(host(answer), peek),
    // A volume held back by the fault becomes available at last, while the cleanup waits to delete it.
    onStateEntered: (name) => {
      if (name === states.cleanupStartRelease) fixture.ec2.faults.volumesStayCreating = false;
    },
    ...(waitSeconds ? { waitSeconds } : {}),
  });
  const record = (await fixture.repository.readRestoreRecord(restoreId)) as RestoreRecord;
  return { ...result, record };
}

const otherInstance = { instanceId: 'i-0000000000000000b' };
const launch = { launch: { launchTemplate: 'pgsnap-drill', subnetId: 'subnet-0123456789abcdef0' } };

describe('a restore that succeeds', () => {
  test('a drill of the latest backup makes, attaches, checks, and then removes every volume and the instance it launched', async () => {
    const { run, record } = await restore({ backupId: 'latest', mode: 'drill', instance: launch }, report());
    expect(run.failure).toBeUndefined();
    expect(record.state).toBe('completed');
    expect(record.backupId).toBe(backupId);
    expect(record.volumes.map((v) => v.source.holds[0]!.role).sort()).toEqual(['data', 'wal']);
    expect(record.volumes.every((v) => v.volumeId && v.device)).toBe(true);
    expect(record.host?.checks.amcheck?.ok).toBe(true);
    expect(record.rtoSeconds).toBeGreaterThanOrEqual(0);
    expect(record.dataKept?.lastReplayedCommit).toBe('2026-11-21T14:40:00.000Z');
    expect(record.cleanup?.volumesDeleted.sort()).toEqual(record.volumes.map((v) => v.volumeId!).sort());
    expect(fixture.ec2.clonedVolumes).toEqual([]);
    expect(fixture.ec2.launchedInstances.map((i) => i.state)).toEqual(['terminated']);
    // Both RTO numbers of the record, as metrics too (what the dashboard graphs and rtoMinutes alarms on):
    // time to full speed an estimate at EBS's default rate, never before the server opened.
    expect(record.initialization).toMatchObject({ basis: 'estimate', rateMiBps: 40 });
    // EBS reports the progress at the default rate, but no time left: the figure stays the estimate.
    expect(record.initialization?.measured).toMatchObject({ volumes: 2, reported: 2 });
    expect(record.initialization?.measured?.remainingSeconds).toBeUndefined();
    expect(record.timeToFullSpeedSeconds).toBeGreaterThanOrEqual(record.rtoSeconds!);
    expect(run.metrics).toEqual([
      { name: 'DrillRtoSeconds', cluster: 'orders-db', value: record.rtoSeconds },
      { name: 'DrillTimeToFullSpeedSeconds', cluster: 'orders-db', value: record.timeToFullSpeedSeconds },
      { name: 'DrillSucceeded', cluster: 'orders-db', value: 1 },
    ]);
    expect(run.events.map((e) => e.detailType)).toEqual(['pgsnap drill completed']);
  });

  test("a drill at a provisioned initialization rate records EBS's own time to full speed, measured once the server opened", async () => {
    const { run, record } = await restore(
      { backupId: 'latest', mode: 'drill', instance: launch, initializationRate: 100 },
      report(),
    );
    expect(run.failure).toBeUndefined();
    expect(record.initialization).toMatchObject({ basis: 'provisioned', rateMiBps: 100 });
    const measured = record.initialization!.measured!;
    expect(measured).toMatchObject({ volumes: 2, reported: 2 });
    expect(measured.remainingSeconds).toBeGreaterThan(0);
    const fromRequest =
      (Date.parse(measured.at) - Date.parse(record.timings.requestedAt)) / 1000 + measured.remainingSeconds!;
    expect(record.timeToFullSpeedSeconds).toBe(Math.max(record.rtoSeconds!, Math.round(fromRequest)));
    expect(run.metrics).toContainEqual({
      name: 'DrillTimeToFullSpeedSeconds',
      cluster: 'orders-db',
      value: record.timeToFullSpeedSeconds,
    });
    expect(fixture.ec2.clonedVolumes).toEqual([]);
  });

  test('a restore onto a given instance leaves its volumes attached there and the cluster running', async () => {
    const { run, record } = await restore(
      { backupId, target: { time: '2026-11-21T14:45:00Z' }, instance: otherInstance },
      report(),
    );
    expect(run.failure).toBeUndefined();
    expect(record.state).toBe('running');
    expect(record.target).toEqual({ time: '2026-11-21T14:45:00Z' });
    expect(fixture.ec2.clonedVolumes.map((v) => v.state)).toEqual(['in-use', 'in-use']);
    expect(fixture.ec2.launchedInstances).toEqual([]);
    expect(run.metrics.map((m) => [m.name, m.value])).toEqual([
      ['RestoreRtoSeconds', record.rtoSeconds],
      ['RestoreTimeToFullSpeedSeconds', record.timeToFullSpeedSeconds],
      ['RestoreSucceeded', 1],
    ]);
    expect(run.events[0]?.detail).toMatchObject({ cluster: 'orders-db', backupId, mode: 'restore' });
  });
});

describe('a standby and the DR side', () => {
  test('a standby of the source comes up and stays, its volumes attached; without hot_standby it has no RTO to note', async () => {
    // A standby that does not accept connections (hot_standby = off): the host reports no acceptingAt.
    const { acceptingAt: _never, ...timings } = report().timings;
    const { run, record } = await restore(
      { mode: 'standby', instance: otherInstance, primaryConninfo: 'host=db1 user=replicator' },
      report({ timings }),
    );
    expect(record.rtoSeconds).toBeUndefined();
    expect(run.metrics.map((m) => m.name)).toEqual(['RestoreSucceeded']);
    expect(run.failure).toBeUndefined();
    expect(record).toMatchObject({
      mode: 'standby',
      state: 'running',
      primaryConninfo: 'host=db1 user=replicator',
    });
    expect(fixture.ec2.clonedVolumes.map((v) => v.state)).toEqual(['in-use', 'in-use']);
  });

  test("the DR stack's own restore state machine drills from the DR repository and leaves nothing", async () => {
    expect(drSynthesized.restoreDefinition.StartAt).toBe(states.prepare);
    const { run, record } = await restore(
      { mode: 'drill', instance: launch },
      report(),
      undefined,
      drSynthesized,
    );
    expect(run.failure).toBeUndefined();
    expect(record.state).toBe('completed');
    expect(fixture.ec2.clonedVolumes).toEqual([]);
    expect(run.metrics.map((m) => m.name)).toEqual([
      'DrillRtoSeconds',
      'DrillTimeToFullSpeedSeconds',
      'DrillSucceeded',
    ]);
  });
});

describe('every failure ends with nothing left and the reason in the record', () => {
  const nothingLeft = () => {
    expect(fixture.ec2.clonedVolumes).toEqual([]);
    expect(fixture.ec2.launchedInstances.filter((i) => i.state !== 'terminated')).toEqual([]);
  };

  test('a volume that never becomes available', async () => {
    fixture.ec2.faults.volumesStayCreating = true;
    const { run, record } = await restore({ mode: 'drill', instance: launch }, report(), { volumes: 1 });
    expect(run.failure?.error).toBe('VolumeFailedError');
    expect(record.state).toBe('failed');
    expect(record.failure?.reason).toMatch(/not available after 1 s .*creating/);
    expect(record.cleanup?.volumesDeleted).toHaveLength(2);
    nothingLeft();
    expect(run.metrics.map((m) => m.name)).toEqual(['DrillFailed']);
    expect(run.events.map((e) => e.detailType)).toEqual(['pgsnap restore failed']);
  });

  test('an attach that fails', async () => {
    fixture.ec2.faults.attachFails = 'InvalidParameterValue';
    const { run, record } = await restore({ mode: 'drill', instance: launch }, report());
    expect(run.failure?.error).toBe('InvalidParameterValue');
    expect(record.failure?.reason).toMatch(/attaching .* fails/);
    nothingLeft();
  });

  test('a mount point in use on the host', async () => {
    const { run, record } = await restore(
      { mode: 'drill', instance: launch },
      {
        error: 'MountPointInUseError',
        message: '/var/lib/postgresql is in use: /dev/nvme1n1 is mounted there',
      },
    );
    expect(run.failure?.error).toBe('MountPointInUseError');
    expect(record.failure?.reason).toBe('/var/lib/postgresql is in use: /dev/nvme1n1 is mounted there');
    nothingLeft();
  });

  test('recovery that does not reach the target', async () => {
    const { run, record } = await restore(
      { instance: otherInstance, target: { time: '2026-11-22T00:00:00Z' } },
      {
        error: 'RecoveryTargetNotReachedError',
        message: 'FATAL: recovery ended before configured recovery target was reached',
      },
    );
    expect(run.failure?.error).toBe('RecoveryTargetNotReachedError');
    expect(record.state).toBe('failed');
    expect(record.failure?.reason).toMatch(/recovery ended before/);
    // A given instance is never terminated; the volumes made for it are gone.
    nothingLeft();
    expect(run.metrics.map((m) => m.name)).toEqual(['RestoreFailed']);
  });

  test('a check that fails', async () => {
    const failing = report({
      checks: {
        consistency: { ok: true, detail: 'consistent' },
        sql: { ok: false, detail: "select count(*) > 0 from orders answered 'f', expected 't'" },
      },
      ok: false,
    });
    const { run, record } = await restore({ mode: 'drill', instance: launch }, failing);
    expect(run.failure?.error).toBe('RestoreCheckFailedError');
    expect(record.state).toBe('failed');
    expect(record.host?.checks.sql?.ok).toBe(false);
    expect(record.failure?.reason).toMatch(/sql: select count\(\*\) > 0 from orders answered 'f'/);
    nothingLeft();
  });

  test('a WAL gap refuses the request before anything is made, naming the missing segment', async () => {
    fixture.archive(['000000010000000000000005']);
    const { run, record } = await restore({ mode: 'drill', instance: launch }, report());
    expect(run.failure?.error).toBe('WalGapError');
    expect(record.state).toBe('failed');
    expect(record.failure?.reason).toMatch(/WAL segment 000000010000000000000004 of orders-db is missing/);
    expect(record.volumes).toEqual([]);
    expect(run.entered).not.toContain(states.createVolumes);
    expect(fixture.ec2.launchedInstances).toEqual([]);
    expect(run.metrics.map((m) => m.name)).toEqual(['DrillFailed']);
  });

  test('the source host is refused as the target', async () => {
    const { run, record } = await restore({ instance: { instanceId } }, report());
    expect(run.failure?.error).toBe('PreconditionError');
    expect(record.failure?.reason).toMatch(/is the host of orders-db/);
    nothingLeft();
  });

  test('a target before the backup consistency point is refused', async () => {
    const { run, record } = await restore(
      { instance: otherInstance, target: { lsn: '0/2000100' } },
      report(),
    );
    expect(run.failure?.error).toBe('PreconditionError');
    expect(record.failure?.reason).toMatch(/before the backup's consistency point/);
  });
});

describe("with AWS's documented semantics enforced (local/aws-facts.ts)", () => {
  const nothingLeft = () => {
    expect(fixture.ec2.clonedVolumes).toEqual([]);
    expect(fixture.ec2.rootVolumes).toEqual([]);
    expect(fixture.ec2.launchedInstances.filter((i) => i.state !== 'terminated')).toEqual([]);
  };

  test('a launched drill, with what it made shown late, a device name taken unseen and a template with network interfaces, passes and leaves nothing', async () => {
    Object.assign(fixture.ec2.semantics, { notFoundLooks: 2, tagLagLooks: 3 });
    fixture.ec2.faults.unseenDevice = '/dev/sdf';
    fixture.ec2.addLaunchTemplate('pgsnap-drill', { networkInterfaces: true });
    let rootTags: string[] = [];
    const { run, record } = await restore(
      { mode: 'drill', instance: launch },
      report(),
      undefined,
      synthesized,
      {
        [states.restoreOnHost]: () => {
          rootTags = fixture.ec2.rootVolumes.flatMap((r) => r.tags.map((t) => t.Key!));
        },
      },
    );
    expect(run.failure).toBeUndefined();
    expect(record.state).toBe('completed');
    expect(record.volumes.map((v) => v.device)).not.toContain('/dev/sdf');
    // The instance's own root volume is tagged apart from the restore's volumes, and went with the instance.
    expect(rootTags).toContain('pgsnap:restore-root');
    expect(rootTags).not.toContain('pgsnap:restore-id');
    expect(record.cleanup?.volumesDeleted.sort()).toEqual(record.volumes.map((v) => v.volumeId!).sort());
    expect(record.cleanup?.instanceTerminated).toBe(record.instance?.instanceId);
    nothingLeft();
  });

  test('a DR restore of copies under the DR key passes with the rights the DR stack grants, and leaves nothing', async () => {
    expect(drKey.mayUse).toEqual({ CreateVolume: true, AttachVolume: true, RunInstances: true });
    fixture.ec2.snapshotKmsKeyId = drKey.arn;
    fixture.ec2.semantics.mayUseKey = (key, call) => key === drKey.arn && drKey.mayUse[call];
    let encrypted: string[] = [];
    const { run, record } = await restore(
      { mode: 'drill', instance: launch },
      report(),
      undefined,
      drSynthesized,
      {
        [states.restoreOnHost]: async () => {
          const { Volumes } = (await fixture.ec2.send(
            new DescribeVolumesCommand({ Filters: [{ Name: 'tag:pgsnap:restore-id', Values: [restoreId] }] }),
          )) as { Volumes: Array<{ KmsKeyId?: string }> };
          encrypted = Volumes.map((v) => v.KmsKeyId ?? 'none');
        },
      },
    );
    expect(run.failure).toBeUndefined();
    expect(record.state).toBe('completed');
    expect(encrypted).toEqual([drKey.arn, drKey.arn]);
    nothingLeft();
  });

  test('an attach EC2 refuses because the caller may not have a grant made on the volume key fails, and leaves nothing', async () => {
    fixture.ec2.snapshotKmsKeyId = drKey.arn;
    fixture.ec2.semantics.mayUseKey = (_key, call) => call !== 'AttachVolume';
    const { run, record } = await restore(
      { mode: 'drill', instance: launch },
      report(),
      undefined,
      drSynthesized,
    );
    expect(run.failure?.error).toBe('UnauthorizedOperation');
    expect(record.state).toBe('failed');
    expect(record.failure?.reason).toMatch(/kms:CreateGrant/);
    nothingLeft();
  });

  test('a restore whose instance and volumes are not visible for the first checks, and whose tags show later still, fails its check and still leaves nothing', async () => {
    // Longer than the cleanup's tag-filtered looks last: only the ids the restore recorded find what it made.
    Object.assign(fixture.ec2.semantics, { notFoundLooks: 4, tagLagLooks: 100 });
    const failing = report({
      checks: {
        consistency: { ok: true, detail: 'consistent' },
        sql: { ok: false, detail: 'select 1 answered 2' },
      },
      ok: false,
    });
    const { run, record } = await restore({ mode: 'drill', instance: launch }, failing);
    expect(run.failure?.error).toBe('RestoreCheckFailedError');
    expect(record.cleanup?.volumesDeleted).toHaveLength(2);
    expect(record.cleanup?.instanceTerminated).toBe(record.instance?.instanceId);
    nothingLeft();
  });

  test('a launch whose root volume key the caller may not use ends at launch, and leaves nothing', async () => {
    fixture.ec2.addLaunchTemplate('pgsnap-drill', { rootKmsKeyId: drKey.arn });
    fixture.ec2.semantics.mayUseKey = (_key, call) => call !== 'RunInstances';
    const { run, record } = await restore({ mode: 'drill', instance: launch }, report());
    expect(run.failure?.error).toBe('InstanceNotFoundError');
    expect(record.failure?.reason).toMatch(/is terminated/);
    nothingLeft();
  });
});
