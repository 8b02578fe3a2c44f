import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  SFNClient,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, test } from 'vitest';
import { BackupInvalidError } from '#domain/errors';
import { answeringStepFunctions, heartbeatIntervalMs, taskTokenOf } from '../../agent/host/task-token.ts';

const sfn = mockClient(SFNClient);
const client = new SFNClient({ region: 'eu-west-1' });
const progress: string[] = [];
const options = { client, progress: (m: string) => progress.push(m), heartbeatMs: 5 };

beforeEach(() => {
  sfn.reset();
  sfn.on(SendTaskSuccessCommand).resolves({});
  sfn.on(SendTaskFailureCommand).resolves({});
  sfn.on(SendTaskHeartbeatCommand).resolves({});
  progress.length = 0;
});

describe('--task-token', () => {
  test('sends the command document with SendTaskSuccess', async () => {
    const result = await answeringStepFunctions(
      'token-1',
      async () => ({ stopLsn: '0/3000060' }),
      (r) => r,
      options,
    );
    expect(result).toEqual({ stopLsn: '0/3000060' });
    expect(sfn.commandCalls(SendTaskSuccessCommand).map((c) => c.args[0].input)).toEqual([
      { taskToken: 'token-1', output: '{"stopLsn":"0/3000060"}' },
    ]);
    expect(sfn.commandCalls(SendTaskFailureCommand)).toHaveLength(0);
  });

  test("reports a failure with the error's name, which the state machine's Catch matches, and keeps it", async () => {
    const failure = new BackupInvalidError('backup 20261121T143000Z-a1b2c3 is not valid: the session closed');
    await expect(
      answeringStepFunctions(
        'token-2',
        () => Promise.reject(failure),
        () => ({}),
        options,
      ),
    ).rejects.toBe(failure);
    expect(sfn.commandCalls(SendTaskFailureCommand).map((c) => c.args[0].input)).toEqual([
      { taskToken: 'token-2', error: 'BackupInvalidError', cause: failure.message },
    ]);
    expect(sfn.commandCalls(SendTaskSuccessCommand)).toHaveLength(0);
  });

  test('heartbeats while the command runs', async () => {
    let heard!: () => void;
    const heartbeat = new Promise<void>((resolve) => {
      heard = resolve;
    });
    sfn.on(SendTaskHeartbeatCommand).callsFake(async () => {
      heard();
      return {};
    });
    // The work finishes only once Step Functions has heard a heartbeat.
    await answeringStepFunctions(
      'token-3',
      () => heartbeat.then(() => ({ ok: true })),
      (r) => r,
      options,
    );
    expect(sfn.commandCalls(SendTaskHeartbeatCommand)[0]!.args[0].input).toEqual({ taskToken: 'token-3' });
    expect(sfn.commandCalls(SendTaskSuccessCommand)).toHaveLength(1);
  });

  test('without a token nothing is sent', async () => {
    expect(
      await answeringStepFunctions(
        undefined,
        async () => 42,
        () => ({}),
        options,
      ),
    ).toBe(42);
    expect(sfn.calls()).toHaveLength(0);
  });
});

describe('--heartbeat-seconds', () => {
  test("heartbeats three times within the Task state's HeartbeatSeconds, every minute without it", () => {
    expect(heartbeatIntervalMs('300')).toBe(100_000);
    expect(heartbeatIntervalMs('60')).toBe(20_000);
    expect(heartbeatIntervalMs(undefined)).toBe(60_000);
    expect(() => heartbeatIntervalMs('5m')).toThrow(
      /--heartbeat-seconds 5m: give the Task state's HeartbeatSeconds/,
    );
  });
});

describe('where the token comes from', () => {
  test('PGSNAP_TASK_TOKEN, removed from the environment once read, so that nothing pgsnap starts inherits it', () => {
    const env: NodeJS.ProcessEnv = { PGSNAP_TASK_TOKEN: 'token-env', PATH: '/bin' };
    expect(taskTokenOf({}, env)).toBe('token-env');
    expect(env).toEqual({ PATH: '/bin' });
  });

  test('--task-token-file reads it from a file; --task-token still works; both at once are refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgsnap-token-'));
    try {
      writeFileSync(join(dir, 'token'), 'token-file\n', { mode: 0o600 });
      expect(taskTokenOf({ 'task-token-file': join(dir, 'token') }, {})).toBe('token-file');
      expect(taskTokenOf({ 'task-token': 'token-flag' }, { PGSNAP_TASK_TOKEN: 'other' })).toBe('token-flag');
      expect(() => taskTokenOf({ 'task-token': 'a', 'task-token-file': join(dir, 'token') }, {})).toThrow(
        'Cannot specify both --task-token and --task-token-file',
      );
      expect(taskTokenOf({}, {})).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
