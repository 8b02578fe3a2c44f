/**
 * `pgsnap backup start` as an operator runs it: the bundled CLI against a
 * local stand-in for the Step Functions API.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { states } from '../../infra/backup/state-names.ts';
import { TaskTokenEndpoint } from '../../local/task-token-endpoint.ts';
import { pgsnap } from '../support/pgsnap.ts';

const stateMachineArn = 'arn:aws:states:eu-west-1:111122223333:stateMachine:pgsnap-prod-backup';
let endpoint: TaskTokenEndpoint;

beforeAll(async () => {
  endpoint = await TaskTokenEndpoint.start();
});
afterAll(() => endpoint.close());
beforeEach(() => {
  endpoint.requests.length = 0;
  endpoint.handle('StartExecution', (input) => ({
    executionArn: `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${input.name}`,
    startDate: Date.now() / 1000,
  }));
});

const entered = (id: number, name: string, type = 'TaskStateEntered') => ({
  id,
  type,
  timestamp: Date.now() / 1000,
  stateEnteredEventDetails: { name },
});

/** Each GetExecutionHistory call returns one more slice of the history. */
function history(...slices: Array<Array<Record<string, unknown>>>) {
  let calls = 0;
  endpoint.handle('GetExecutionHistory', () => ({ events: slices.slice(0, ++calls).flat() }));
}

const env = () => ({ ...endpoint.env, PGSNAP_STATE_MACHINE_ARN: stateMachineArn });

describe('pgsnap backup start', () => {
  test('starts an execution named after a new backupId with the documented input', async () => {
    const result = await pgsnap(
      ['backup', 'start', '--cluster', 'orders-db', '--label', 'before upgrade', '--json'],
      env(),
    );
    expect(result.code, result.stderr).toBe(0);
    const [start] = endpoint.requests;
    expect(start).toMatchObject({ action: 'StartExecution', input: { stateMachineArn } });
    expect(JSON.parse(start!.input.input as string)).toEqual({
      cluster: 'orders-db',
      label: 'before upgrade',
      trigger: 'cli',
    });
    expect(result.json).toEqual({
      backupId: start!.input.name,
      executionArn: expect.stringMatching(/:execution:pgsnap-prod-backup:\d{8}T\d{6}Z-[0-9a-f]{6}$/),
    });
  });

  test('--wait follows the backup step by step and exits 0 once it is completed', async () => {
    history(
      [entered(2, states.prepare), entered(4, states.begin)],
      [
        entered(7, states.allSnapshotsCompleted, 'ChoiceStateEntered'),
        entered(9, states.markCompleted),
        {
          id: 12,
          type: 'ExecutionSucceeded',
          executionSucceededEventDetails: { output: '{"backupId":"x"}' },
        },
      ],
    );
    const result = await pgsnap(
      [
        'backup',
        'start',
        '--cluster',
        'orders-db',
        '--backup-id',
        '20261121T143000Z-a1b2c3',
        '--wait',
        '--json',
      ],
      env(),
    );
    expect(result.code, result.stderr).toBe(0);
    expect(result.json).toMatchObject({ backupId: '20261121T143000Z-a1b2c3', status: 'SUCCEEDED' });
    const steps = result.stderr.split('\n').filter((line) => line.startsWith('pgsnap: '));
    expect(steps.slice(1)).toEqual([
      `pgsnap: ${states.prepare}`,
      `pgsnap: ${states.begin}`,
      `pgsnap: ${states.markCompleted}`,
    ]);
  });

  test('a backupId whose execution has finished is said to have run, not to have had another input', async () => {
    const backupId = '20261121T143000Z-a1b2c3';
    const input = { cluster: 'orders-db', trigger: 'cli' };
    const exists = () => {
      throw Object.assign(new Error(`Execution Already Exists: '${backupId}'`), {
        name: 'ExecutionAlreadyExists',
      });
    };
    endpoint.handle('StartExecution', exists);
    endpoint.handle('DescribeExecution', (request) => ({
      executionArn: request.executionArn,
      stateMachineArn,
      name: backupId,
      status: 'SUCCEEDED',
      startDate: Date.parse('2026-11-21T14:30:00Z') / 1000,
      stopDate: Date.parse('2026-11-21T14:31:00Z') / 1000,
      input: JSON.stringify(input),
    }));
    const again = await pgsnap(['backup', 'start', '--cluster', 'orders-db', '--backup-id', backupId], env());
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(
      `backup ${backupId} already ran: its execution SUCCEEDED at 2026-11-21T14:31:00.000Z`,
    );
    expect(again.stderr).not.toContain('another input');
    expect(endpoint.requests.find((r) => r.action === 'DescribeExecution')?.input).toEqual({
      executionArn: `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${backupId}`,
    });

    const other = await pgsnap(
      ['backup', 'start', '--cluster', 'orders-db', '--backup-id', backupId, '--label', 'other'],
      env(),
    );
    expect(other.code).toBe(2);
    expect(other.stderr).toContain(`backup ${backupId} was already started with another input`);
  });

  test('--wait exits 1 with the error and cause when the backup failed', async () => {
    history([
      entered(2, states.begin),
      {
        id: 20,
        type: 'ExecutionFailed',
        executionFailedEventDetails: { error: 'PreconditionError', cause: 'archive_command is not set' },
      },
    ]);
    const result = await pgsnap(['backup', 'start', '--cluster', 'orders-db', '--wait', '--json'], env());
    expect(result.code).toBe(1);
    expect(result.json).toMatchObject({
      status: 'FAILED',
      error: 'PreconditionError',
      cause: 'archive_command is not set',
    });
  });

  test('--wait exits 3 when another backup of the cluster was running', async () => {
    history([
      {
        id: 5,
        type: 'ExecutionSucceeded',
        executionSucceededEventDetails: {
          output: JSON.stringify({
            running: {
              Error: 'BackupInProgressError',
              Cause:
                'backup 20261121T120000Z-000001 (label "scheduled") is in progress here since 2026-11-21T12:00:00Z',
            },
          }),
        },
      },
    ]);
    const result = await pgsnap(['backup', 'start', '--cluster', 'orders-db', '--wait'], env());
    expect(result.code).toBe(3);
    expect(result.stdout).toContain(
      'backup 20261121T120000Z-000001 of orders-db is running; this one did nothing',
    );
  });

  test.each([
    [['backup', 'start', '--label', 'x'], /give --cluster NAME/],
    [['backup', 'start', '--cluster', 'orders-db', '--label', "x'y"], /label/],
    [['backup', 'stop', '--cluster', 'orders-db'], /unknown subcommand "stop"/],
  ])('%j is a usage error that starts nothing', async (args, message) => {
    const result = await pgsnap(args, env());
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(endpoint.requests).toEqual([]);
  });

  test('without a state machine it says where to find one', async () => {
    const result = await pgsnap(['backup', 'start', '--cluster', 'orders-db'], endpoint.env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('PGSNAP_STATE_MACHINE_ARN');
  });
});
