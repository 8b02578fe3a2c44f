import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, test } from 'vitest';
import { type CatalogInput, readCatalog } from '#domain/catalog';
import { backupIdFrom } from '#domain/ids';
import { handler as prepareBackup } from '../../functions/prepare-backup.ts';
import { handler as prepareRestore } from '../../functions/prepare-restore.ts';
import { handler as startFleet } from '../../functions/start-fleet.ts';
import { setLocalCatalog } from '../../local/state-machine.ts';

const ec2 = mockClient(EC2Client);
const sfn = mockClient(SFNClient);
const stateMachineArn = 'arn:aws:states:eu-west-1:111122223333:stateMachine:pgsnap-test-backup';
const backupId = '20261121T143000Z-a1b2c3';
const repository = 's3://backups/fleet/';

/** Configured: one listed cluster, and every instance tagged pgsnap:cluster found by its tag. */
const catalog: Omit<CatalogInput, 'schemaVersion'> = {
  clusters: [
    {
      name: 'orders-db',
      instanceId: 'i-0123456789abcdef0',
      volumeIds: ['vol-0000000000000000b'],
      fastCheckpoint: true,
      maxBackupMinutes: 60,
      repository: 's3://backups/pgsnap/',
    },
  ],
  discover: {
    tag: 'pgsnap:cluster',
    repository,
    defaults: { fastCheckpoint: false, maxBackupMinutes: 45, recoverySeconds: 7200 },
  },
};

const host = (instanceId: string, cluster: string, tags: Record<string, string> = {}) => ({
  InstanceId: instanceId,
  Tags: Object.entries({ 'pgsnap:cluster': cluster, ...tags }).map(([Key, Value]) => ({ Key, Value })),
});

const planEvent = (input: unknown) => ({
  input,
  executionName: backupId,
  executionArn: `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${backupId}`,
  executionStartTime: '2026-11-21T14:30:00.000Z',
  stateMachineArn,
});

beforeEach(() => {
  ec2.reset();
  sfn.reset();
  setLocalCatalog(catalog);
  process.env.PGSNAP_STATE_MACHINE_ARN = stateMachineArn;
});

describe('a host tagged with a cluster name, and no configuration change', () => {
  test('is found by one filtered DescribeInstances and backed up with the defaults and its own tags', async () => {
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        {
          Instances: [
            host('i-0aaaaaaaaaaaaaaa1', 'search-db', { 'pgsnap:volumes': 'vol-0000000000000000d' }),
          ],
        },
      ],
    });
    const plan = await prepareBackup(planEvent({ cluster: 'search-db' }));
    expect(plan).toMatchObject({
      cluster: 'search-db',
      instanceId: 'i-0aaaaaaaaaaaaaaa1',
      volumeIds: ['vol-0000000000000000d'],
      fast: false,
      maxBackupMinutes: 45,
      repository,
    });
    const calls = ec2.commandCalls(DescribeInstancesCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.args[0].input.Filters).toEqual([
      { Name: 'tag:pgsnap:cluster', Values: ['search-db'] },
      { Name: 'instance-state-name', Values: ['running'] },
    ]);
  });

  test('a listed cluster is planned from the catalog, without a call for its tags', async () => {
    const plan = await prepareBackup(planEvent({ cluster: 'orders-db' }));
    expect(plan).toMatchObject({ instanceId: 'i-0123456789abcdef0', repository: 's3://backups/pgsnap/' });
    expect(ec2.commandCalls(DescribeInstancesCommand)).toHaveLength(0);
  });

  test('no tagged host: the request is refused, naming how clusters are found', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    await expect(prepareBackup(planEvent({ cluster: 'gone-db' }))).rejects.toMatchObject({
      name: 'InvalidInputError',
      message: expect.stringContaining('any instance tagged pgsnap:cluster=<cluster>'),
    });
  });

  test('two hosts tagged with one cluster: refused, naming both', async () => {
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        { Instances: [host('i-0aaaaaaaaaaaaaaa1', 'search-db'), host('i-0aaaaaaaaaaaaaaa2', 'search-db')] },
      ],
    });
    await expect(prepareBackup(planEvent({ cluster: 'search-db' }))).rejects.toMatchObject({
      name: 'InstanceNotFoundError',
      message: expect.stringMatching(/i-0aaaaaaaaaaaaaaa1, i-0aaaaaaaaaaaaaaa2/),
    });
  });

  test('a tag that is not a volume id is refused with what to put there', async () => {
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        { Instances: [host('i-0aaaaaaaaaaaaaaa1', 'search-db', { 'pgsnap:volumes': '/dev/sdf' })] },
      ],
    });
    await expect(prepareBackup(planEvent({ cluster: 'search-db' }))).rejects.toMatchObject({
      name: 'InvalidInputError',
      message: expect.stringContaining('pgsnap:volumes'),
    });
  });

  test("a restore of a discovered cluster reads the fleet's repository", async () => {
    const fleetRepository = mkdtempSync(join(tmpdir(), 'pgsnap-fleet-'));
    setLocalCatalog({
      ...catalog,
      discover: { ...catalog.discover!, repository: `file://${fleetRepository}` },
    });
    const refused = prepareRestore({
      input: { cluster: 'search-db', mode: 'restore', instance: { instanceId: 'i-0bbbbbbbbbbbbbbb1' } },
      executionName: 'r-20261121T150000Z-d0d0d0',
      executionStartTime: '2026-11-21T15:00:00.000Z',
    });
    // The repository has no backup of it yet: refused, naming the cluster's place in the fleet's repository.
    await expect(refused).rejects.toThrow(`file://${fleetRepository}/search-db`);
    rmSync(fleetRepository, { recursive: true, force: true });
  });
});

describe('a fleet schedule', () => {
  const scheduledTime = '2026-11-21T03:00:00Z';

  test('starts one execution per tagged cluster not listed, named after it and the scheduled time', async () => {
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        {
          Instances: [
            host('i-0aaaaaaaaaaaaaaa1', 'search-db'),
            host('i-0aaaaaaaaaaaaaaa2', 'events-db'),
            host('i-0123456789abcdef0', 'orders-db'),
            host('i-0aaaaaaaaaaaaaaa3', 'Not A Name'),
          ],
        },
      ],
    });
    sfn.on(StartExecutionCommand).callsFake(({ name }) => ({
      executionArn: `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`,
    }));
    const result = await startFleet({ label: 'nightly', scheduledTime });
    expect(result).toMatchObject({
      started: ['search-db', 'events-db'],
      alreadyStarted: [],
      skipped: [{ instanceId: 'i-0aaaaaaaaaaaaaaa3', value: 'Not A Name' }],
    });
    const starts = sfn.commandCalls(StartExecutionCommand).map((c) => c.args[0].input);
    expect(starts.map((s) => s.name)).toEqual([
      backupIdFrom(new Date(scheduledTime), 'search-db'),
      backupIdFrom(new Date(scheduledTime), 'events-db'),
    ]);
    expect(JSON.parse(starts[0]!.input!)).toMatchObject({
      cluster: 'search-db',
      label: 'nightly',
      trigger: 'schedule',
    });
    expect(ec2.commandCalls(DescribeInstancesCommand)[0]!.args[0].input.Filters).toEqual([
      { Name: 'tag-key', Values: ['pgsnap:cluster'] },
      { Name: 'instance-state-name', Values: ['running'] },
    ]);
  });

  test('a schedule shared by listed clusters starts each of them, without reading the catalog or the instances', async () => {
    delete process.env.PGSNAP_CATALOG;
    sfn.on(StartExecutionCommand).callsFake(({ name }) => ({
      executionArn: `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`,
    }));
    const result = await startFleet({
      label: 'hourly',
      scheduledTime,
      clusters: ['orders-db', 'billing-db'],
    });
    expect(result).toMatchObject({ started: ['orders-db', 'billing-db'], alreadyStarted: [], skipped: [] });
    const starts = sfn.commandCalls(StartExecutionCommand).map((c) => c.args[0].input);
    expect(starts.map((s) => s.name)).toEqual([
      backupIdFrom(new Date(scheduledTime), 'orders-db'),
      backupIdFrom(new Date(scheduledTime), 'billing-db'),
    ]);
    expect(JSON.parse(starts[1]!.input!)).toMatchObject({ cluster: 'billing-db', label: 'hourly' });
    expect(ec2.calls()).toHaveLength(0);
  });

  test('a schedule naming a cluster that is no valid name is refused before anything starts', async () => {
    await expect(startFleet({ scheduledTime, clusters: ['Orders DB'] })).rejects.toMatchObject({
      name: 'InvalidInputError',
    });
    expect(sfn.calls()).toHaveLength(0);
  });

  test('a second delivery is refused by Step Functions and starts nothing, without a list or describe call', async () => {
    ec2
      .on(DescribeInstancesCommand)
      .resolves({ Reservations: [{ Instances: [host('i-0aaaaaaaaaaaaaaa1', 'search-db')] }] });
    sfn.on(StartExecutionCommand).rejects(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }));
    const result = await startFleet({ scheduledTime });
    expect(result).toMatchObject({ started: [], alreadyStarted: ['search-db'] });
    expect(sfn.commandCalls(DescribeExecutionCommand)).toHaveLength(0);
    expect(sfn.calls()).toHaveLength(1);
  });

  test('a start that fails fails the invocation, after starting the others, so the retry starts only it', async () => {
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        { Instances: [host('i-0aaaaaaaaaaaaaaa1', 'search-db'), host('i-0aaaaaaaaaaaaaaa2', 'events-db')] },
      ],
    });
    sfn
      .on(StartExecutionCommand)
      .rejectsOnce(Object.assign(new Error('Access denied'), { name: 'AccessDeniedException' }))
      .resolves({ executionArn: 'arn:aws:states:eu-west-1:111122223333:execution:x:y' });
    await expect(startFleet({ scheduledTime })).rejects.toMatchObject({
      name: 'FleetStartError',
      message: expect.stringContaining('search-db: Access denied'),
    });
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(2);
  });
});

test('the catalog file is read again on every call: the local harness rewrites it', async () => {
  setLocalCatalog({ clusters: [] });
  expect((await readCatalog()).clusters).toEqual([]);
  setLocalCatalog(catalog);
  expect((await readCatalog()).clusters.map((c) => c.name)).toEqual(['orders-db']);
});
