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
import { handler as prepareBackup } from '../../functions/prepare-backup.ts';
import { handler as startBackup } from '../../functions/start-backup.ts';

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
  process.env.PGSNAP_CLUSTERS = JSON.stringify(clusters);
  process.env.PGSNAP_STATE_MACHINE_ARN = stateMachineArn;
  sfn.on(ListExecutionsCommand).resolves({ executions: [] });
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

  test('steps aside for an earlier running backup of the same cluster, and only that', async () => {
    const running = (name: string, start: string, cluster: string) => {
      sfn
        .on(DescribeExecutionCommand, { executionArn: executionArn(name) })
        .resolves({ input: JSON.stringify({ cluster }) });
      return {
        name,
        executionArn: executionArn(name),
        startDate: new Date(start),
        stateMachineArn,
        status: 'RUNNING' as const,
      };
    };
    sfn.on(ListExecutionsCommand).resolves({
      executions: [
        running('20261121T142000Z-000001', '2026-11-21T14:20:00Z', 'billing-db'),
        running('20261121T143500Z-000002', '2026-11-21T14:35:00Z', 'orders-db'),
        {
          name: backupId,
          executionArn: executionArn(backupId),
          startDate: new Date(startedAt),
          stateMachineArn,
          status: 'RUNNING',
        },
      ],
    });
    expect(await prepareBackup(event({ cluster: 'orders-db' }))).not.toHaveProperty('runningBackupId');

    sfn.on(ListExecutionsCommand).resolves({
      executions: [running('20261121T142500Z-000003', '2026-11-21T14:25:00Z', 'orders-db')],
    });
    expect(await prepareBackup(event({ cluster: 'orders-db' }))).toMatchObject({
      runningBackupId: '20261121T142500Z-000003',
    });
  });

  test('names an earlier running backup started from the console by the backupId its own first step derived', async () => {
    sfn.on(DescribeExecutionCommand).resolves({ input: JSON.stringify({ cluster: 'orders-db' }) });
    sfn.on(ListExecutionsCommand).resolves({
      executions: [
        {
          name: consoleName,
          executionArn: executionArn(consoleName),
          startDate: new Date('2026-11-21T14:29:00.456Z'),
          stateMachineArn,
          status: 'RUNNING',
        },
      ],
    });
    const earlier = await prepareBackup({
      ...event({ cluster: 'orders-db' }, consoleName),
      executionStartTime: '2026-11-21T14:29:00.456Z',
    });
    expect(await prepareBackup(event({ cluster: 'orders-db' }))).toMatchObject({
      runningBackupId: earlier.backupId,
    });
    expect(earlier.backupId).toBe('20261121T142900Z-92dc8c');
  });
});

describe('start-backup', () => {
  test('starts an execution named after a new backupId with the validated input', async () => {
    sfn
      .on(StartExecutionCommand)
      .callsFake((input) => ({ executionArn: executionArn(input.name), startDate: new Date() }));
    const started = await startBackup({ cluster: 'orders-db', label: 'nightly', trigger: 'schedule' });
    expect(started.backupId).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{6}$/);
    const call = sfn.commandCalls(StartExecutionCommand)[0]!.args[0].input;
    expect(call).toEqual({
      stateMachineArn,
      name: started.backupId,
      input: JSON.stringify({ cluster: 'orders-db', label: 'nightly', trigger: 'schedule' }),
    });
    expect(started.executionArn).toBe(executionArn(started.backupId));
  });

  test('bad input starts nothing', async () => {
    await expect(startBackup({ cluster: 'orders-db', label: '$(reboot)' })).rejects.toMatchObject({
      name: 'InvalidInputError',
    });
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  test('the same backupId with another input is refused rather than taken for the first', async () => {
    sfn.on(StartExecutionCommand).rejects(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }));
    await expect(startBackup({ cluster: 'orders-db' })).rejects.toMatchObject({ name: 'InvalidInputError' });
  });
});
