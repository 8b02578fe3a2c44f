import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  ListExecutionsCommand,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, test } from 'vitest';
import type { ClusterTarget } from '#domain/backup/plan';
import { backupIdFrom } from '#domain/ids';
import { handler as prepareBackup } from '../../functions/prepare-backup.ts';
import { handler as startBackup } from '../../functions/start-backup.ts';
import { setLocalCatalog } from '../../local/state-machine.ts';

const ec2 = mockClient(EC2Client);
const sfn = mockClient(SFNClient);
const stateMachineArn = 'arn:aws:states:eu-west-1:111122223333:stateMachine:pgsnap-test-backup';
const executionArn = (name: string) =>
  `arn:aws:states:eu-west-1:111122223333:execution:pgsnap-test-backup:${name}`;
const backupId = '20261121T143000Z-a1b2c3';
/** The console's default execution name: a random UUID. */
const consoleName = '3f8e2c1a-9b4d-4e7f-a2c6-5d1b0e9f7a34';
const startedAt = '2026-11-21T14:30:00.000Z';

const clusters: ClusterTarget[] = [
  {
    name: 'orders-db',
    instanceId: 'i-0123456789abcdef0',
    volumeIds: ['vol-0000000000000000b'],
    fastCheckpoint: true,
    maxBackupMinutes: 60,
    repository: 's3://backups/pgsnap',
  },
  {
    name: 'billing-db',
    instanceTags: { 'pgsnap:cluster': 'billing-db' },
    volumeIds: [],
    fastCheckpoint: false,
    maxBackupMinutes: 30,
    repository: 's3://backups',
  },
];

beforeEach(() => {
  ec2.reset();
  sfn.reset();
  setLocalCatalog({ clusters });
  process.env.PGSNAP_STATE_MACHINE_ARN = stateMachineArn;
});

const event = (input: unknown, name = backupId) => ({
  input,
  executionName: name,
  executionArn: executionArn(name),
  executionStartTime: startedAt,
  stateMachineArn,
});

describe('prepare-backup', () => {
  test("plans the backup from the request and the cluster's configuration", async () => {
    expect(await prepareBackup(event({ cluster: 'orders-db', trigger: 'cli' }))).toEqual({
      backupId,
      cluster: 'orders-db',
      label: 'on-demand',
      fast: true,
      trigger: 'cli',
      instanceId: 'i-0123456789abcdef0',
      volumeIds: ['vol-0000000000000000b'],
      maxBackupMinutes: 60,
      repository: 's3://backups/pgsnap',
    });
  });

  test('finds a host selected by tags among running instances', async () => {
    ec2
      .on(DescribeInstancesCommand)
      .resolves({ Reservations: [{ Instances: [{ InstanceId: 'i-0fedcba987654321' }] }] });
    const plan = await prepareBackup(event({ cluster: 'billing-db', label: 'before upgrade', fast: true }));
    expect(plan).toMatchObject({ instanceId: 'i-0fedcba987654321', label: 'before upgrade', fast: true });
    expect(ec2.commandCalls(DescribeInstancesCommand)[0]!.args[0].input.Filters).toEqual([
      { Name: 'tag:pgsnap:cluster', Values: ['billing-db'] },
      { Name: 'instance-state-name', Values: ['running'] },
    ]);
  });

  test('refuses tags that select two hosts, naming both', async () => {
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        { Instances: [{ InstanceId: 'i-01111111111111111' }, { InstanceId: 'i-02222222222222222' }] },
      ],
    });
    await expect(prepareBackup(event({ cluster: 'billing-db' }))).rejects.toMatchObject({
      name: 'InstanceNotFoundError',
      message: expect.stringMatching(/i-01111111111111111, i-02222222222222222/),
    });
  });

  test.each([
    [{}, 'cluster'],
    [{ cluster: 'Orders DB' }, 'cluster'],
    [{ cluster: 'orders-db', label: "x'; rm -rf /" }, 'label'],
    [{ cluster: 'orders-db', fast: 'yes' }, 'fast'],
    [{ cluster: 'orders-db', wait: true }, 'wait'],
    [{ cluster: 'unknown-db' }, 'unknown-db is not configured'],
  ])('bad input %j fails at once, naming %s', async (input, field) => {
    await expect(prepareBackup(event(input))).rejects.toMatchObject({
      name: 'InvalidInputError',
      message: expect.stringContaining(field),
    });
  });

  test("an execution under the console's default name (a UUID) is planned under a backupId derived from it", async () => {
    const plan = await prepareBackup(event({ cluster: 'orders-db' }, consoleName));
    // The start time 2026-11-21T14:30:00.000Z, then the SHA-256 of the name.
    expect(plan).toMatchObject({
      backupId: '20261121T143000Z-92dc8c',
      trigger: 'console',
      label: 'on-demand',
    });
    expect(await prepareBackup(event({ cluster: 'orders-db' }, consoleName))).toEqual(plan);
  });

  test('an event without a valid start time is refused', () => {
    // The event is parsed before anything asynchronous starts, so the handler throws at once.
    expect(() =>
      prepareBackup({ ...event({ cluster: 'orders-db' }, consoleName), executionStartTime: 'yesterday' }),
    ).toThrow(
      expect.objectContaining({
        name: 'InvalidInputError',
        message: expect.stringContaining('executionStartTime'),
      }),
    );
  });

  test("asks Step Functions nothing: whether another backup runs is the host's answer at begin", async () => {
    const plan = await prepareBackup(event({ cluster: 'orders-db' }));
    expect(plan).toMatchObject({ backupId, cluster: 'orders-db', instanceId: 'i-0123456789abcdef0' });
    expect(sfn.calls()).toHaveLength(0);
  });
});

describe('start-backup', () => {
  const scheduledTime = '2026-11-21T14:00:00Z';
  const delivery = { cluster: 'orders-db', label: 'nightly', trigger: 'schedule', scheduledTime };

  test('starts an execution named after the cluster and the scheduled time, with the validated input', async () => {
    sfn
      .on(StartExecutionCommand)
      .callsFake((input) => ({ executionArn: executionArn(input.name), startDate: new Date() }));
    const started = await startBackup(delivery);
    expect(started).toEqual({
      backupId: backupIdFrom(new Date(scheduledTime), 'orders-db'),
      executionArn: executionArn(started.backupId),
      alreadyStarted: false,
    });
    expect(started.backupId).toMatch(/^20261121T140000Z-[0-9a-f]{6}$/);
    expect(sfn.commandCalls(StartExecutionCommand)[0]!.args[0].input).toEqual({
      stateMachineArn,
      name: started.backupId,
      input: JSON.stringify({ cluster: 'orders-db', label: 'nightly', trigger: 'schedule' }),
    });
    // Another cluster due at the same moment gets its own execution.
    expect((await startBackup({ ...delivery, cluster: 'billing-db' })).backupId).not.toBe(started.backupId);
  });

  test('a duplicate delivery is refused by Step Functions itself, without a list or describe call', async () => {
    const names = new Set<string>();
    sfn.on(StartExecutionCommand).callsFake((input) => {
      // Step Functions: a name already used in this state machine (with another input, or closed) is refused.
      if (names.has(input.name))
        throw new ExecutionAlreadyExists({ message: 'Execution Already Exists', $metadata: {} });
      names.add(input.name);
      return { executionArn: executionArn(input.name), startDate: new Date() };
    });
    const first = await startBackup(delivery);
    const second = await startBackup({ ...delivery, label: 'hourly' });
    expect(second).toEqual({ ...first, alreadyStarted: true });
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(2);
    expect(sfn.commandCalls(ListExecutionsCommand)).toHaveLength(0);
    expect(sfn.commandCalls(DescribeExecutionCommand)).toHaveLength(0);
    expect(sfn.calls()).toHaveLength(2);
  });

  test('bad input starts nothing', async () => {
    await expect(startBackup({ ...delivery, label: '$(reboot)' })).rejects.toMatchObject({
      name: 'InvalidInputError',
    });
    await expect(startBackup({ cluster: 'orders-db', trigger: 'schedule' })).rejects.toMatchObject({
      name: 'InvalidInputError',
    });
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  test('any other refusal fails the delivery, for Scheduler to retry', async () => {
    sfn
      .on(StartExecutionCommand)
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    await expect(startBackup(delivery)).rejects.toMatchObject({ name: 'ThrottlingException' });
  });
});
