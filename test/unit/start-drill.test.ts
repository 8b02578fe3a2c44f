/** start-drill: what a drill schedule invokes, naming each drill execution after the cluster and the scheduled time. */
import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, test } from 'vitest';
import { restoreIdPattern } from '#domain/ids';
import { scheduledDrillId } from '#domain/restore/execution';
import { handler as startDrill } from '../../functions/start-drill.ts';

const sfn = mockClient(SFNClient);
const stateMachineArn = 'arn:aws:states:us-west-2:444455556666:stateMachine:pgsnap-prod-dr-restore';
const executionArn = (name: string) =>
  `arn:aws:states:us-west-2:444455556666:execution:pgsnap-prod-dr-restore:${name}`;
const scheduledTime = '2026-11-21T07:00:00Z';
const delivery = {
  cluster: 'orders-db',
  backupId: 'latest',
  mode: 'drill',
  instance: {
    launch: { subnetId: 'subnet-0fedcba9876543210', launchTemplate: 'pgsnap-prod-dr-drill-orders-db' },
  },
  checks: { amcheck: 'all' },
  scheduledTime,
};

beforeEach(() => {
  sfn.reset();
  process.env.PGSNAP_RESTORE_STATE_MACHINE_ARN = stateMachineArn;
});

describe('start-drill', () => {
  test('starts a drill named after the cluster and the scheduled time, a restoreId the record is found under', async () => {
    sfn.on(StartExecutionCommand).callsFake((input) => ({ executionArn: executionArn(input.name) }));
    const started = await startDrill(delivery);
    const restoreId = scheduledDrillId('orders-db', new Date(scheduledTime));
    expect(restoreId).toMatch(restoreIdPattern);
    expect(restoreId).toMatch(/^r-20261121T070000Z-/);
    expect(started).toEqual({ restoreId, executionArn: executionArn(restoreId), alreadyStarted: false });
    const sent = sfn.commandCalls(StartExecutionCommand)[0]!.args[0].input;
    expect(sent.stateMachineArn).toBe(stateMachineArn);
    expect(sent.name).toBe(restoreId);
    const { scheduledTime: _, ...request } = delivery;
    expect(JSON.parse(sent.input!)).toEqual({ ...request, restoreId });
    // Another cluster due at the same moment drills in its own execution.
    expect((await startDrill({ ...delivery, cluster: 'billing-db' })).restoreId).not.toBe(restoreId);
  });

  test('a second delivery of the same schedule is refused by Step Functions, and drills once', async () => {
    const names = new Set<string>();
    sfn.on(StartExecutionCommand).callsFake((input) => {
      if (names.has(input.name)) throw new ExecutionAlreadyExists({ message: 'exists', $metadata: {} });
      names.add(input.name);
      return { executionArn: executionArn(input.name) };
    });
    const first = await startDrill(delivery);
    const second = await startDrill(delivery);
    expect(second).toEqual({ ...first, alreadyStarted: true });
    expect(names.size).toBe(1);
  });

  test('a delivery that is no drill, or has no scheduled time, is refused before anything starts', async () => {
    await expect(startDrill({ ...delivery, mode: 'restore' })).rejects.toThrow(/starts drills only/);
    const { scheduledTime: _, ...undated } = delivery;
    await expect(startDrill(undated)).rejects.toThrow(/scheduledTime/);
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });
});
