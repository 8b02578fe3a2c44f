/** The start-drill Lambda a drill schedule invokes: one execution per cluster and due time. */
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  ListExecutionsCommand,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, test } from 'vitest';
import { restoreIdPattern } from '#domain/ids';
import { handler as startDrill } from '../../functions/start-drill.ts';

const sfn = mockClient(SFNClient);
const stateMachineArn = 'arn:aws:states:eu-west-1:111122223333:stateMachine:pgsnap-test-restore';
const executionArn = (name: string) =>
  `arn:aws:states:eu-west-1:111122223333:execution:pgsnap-test-restore:${name}`;
const scheduledTime = '2026-12-06T06:00:00Z';
const delivery = {
  cluster: 'orders-db',
  backupId: 'latest',
  mode: 'drill',
  instance: { launch: { launchTemplate: 'pgsnap-drill', subnetId: 'subnet-0123456789abcdef0' } },
  checks: { amcheck: 'all' },
  scheduledTime,
};

beforeEach(() => {
  sfn.reset();
  process.env.PGSNAP_STATE_MACHINE_ARN = stateMachineArn;
});

describe('start-drill', () => {
  test('starts a drill named after the cluster and the due time, the name its restoreId', async () => {
    sfn
      .on(StartExecutionCommand)
      .callsFake((input) => ({ executionArn: executionArn(input.name), startDate: new Date() }));
    const started = await startDrill(delivery);
    expect(started.restoreId).toMatch(restoreIdPattern);
    expect(started.restoreId).toMatch(/^r-20261206T060000Z-/);
    expect(started).toEqual({
      restoreId: started.restoreId,
      executionArn: executionArn(started.restoreId),
      alreadyStarted: false,
    });
    const call = sfn.commandCalls(StartExecutionCommand)[0]!.args[0].input;
    expect(call.name).toBe(started.restoreId);
    expect(JSON.parse(call.input!)).toMatchObject({
      cluster: 'orders-db',
      backupId: 'latest',
      mode: 'drill',
      restoreId: started.restoreId,
    });
    expect(JSON.parse(call.input!)).not.toHaveProperty('scheduledTime');
    // Another cluster due at the same moment, or the same cluster a week later, is another drill.
    expect((await startDrill({ ...delivery, cluster: 'billing-db' })).restoreId).not.toBe(started.restoreId);
    expect((await startDrill({ ...delivery, scheduledTime: '2026-12-13T06:00:00Z' })).restoreId).not.toBe(
      started.restoreId,
    );
  });

  test('a duplicate delivery is refused by Step Functions itself, without a list or describe call', async () => {
    const names = new Set<string>();
    sfn.on(StartExecutionCommand).callsFake((input) => {
      if (names.has(input.name))
        throw new ExecutionAlreadyExists({ message: 'Execution Already Exists', $metadata: {} });
      names.add(input.name);
      return { executionArn: executionArn(input.name), startDate: new Date() };
    });
    const first = await startDrill(delivery);
    const second = await startDrill(delivery);
    expect(second).toEqual({ ...first, alreadyStarted: true });
    expect(sfn.commandCalls(ListExecutionsCommand)).toHaveLength(0);
    expect(sfn.commandCalls(DescribeExecutionCommand)).toHaveLength(0);
    expect(sfn.calls()).toHaveLength(2);
  });

  test('bad input starts nothing; any other refusal fails the delivery, for Scheduler to retry', async () => {
    await expect(startDrill({ ...delivery, cluster: 'Orders DB' })).rejects.toMatchObject({
      name: 'InvalidInputError',
    });
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
    sfn
      .on(StartExecutionCommand)
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    await expect(startDrill(delivery)).rejects.toMatchObject({ name: 'ThrottlingException' });
  });
});
