import { afterEach, describe, expect, test, vi } from 'vitest';

/** The handler's log lines: Powertools' Logger writes one JSON document per line. */
async function linesOf(
  run: (logged: typeof import('../../functions/commons/logged.ts').logged) => Promise<unknown>,
) {
  vi.resetModules();
  vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'INFO');
  const written: string[] = [];
  const capture = (chunk: unknown) => {
    written.push(String(chunk));
    return true;
  };
  // Info on stdout, errors on stderr, as Lambda's console does.
  const writes = [
    vi.spyOn(process.stdout, 'write').mockImplementation(capture),
    vi.spyOn(process.stderr, 'write').mockImplementation(capture),
  ];
  const { logged } = await import('../../functions/commons/logged.ts');
  let outcome: unknown;
  try {
    outcome = await run(logged);
  } catch (error) {
    outcome = error;
  } finally {
    for (const write of writes) write.mockRestore();
  }
  const lines = written
    .join('')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { lines, outcome };
}

const context = {
  awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e812345678',
  functionName: 'pgsnap-test-RecordBackup',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:eu-west-1:111122223333:function:pgsnap-test-RecordBackup',
  memoryLimitInMB: '256',
  logGroupName: '/aws/lambda/pgsnap-test-RecordBackup',
  logStreamName: '2026/12/01/[$LATEST]abc',
  callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => 1000,
  done: () => {},
  fail: () => {},
  succeed: () => {},
};

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('the Lambdas log one JSON line per step', () => {
  test('a step that ends: its step, cluster, backupId, the Lambda request id and the result', async () => {
    const { lines, outcome } = await linesOf((logged) =>
      logged('record-backup', async () => ({ state: 'completed' }))(
        { cluster: 'orders-db', backupId: '20260101T030000Z-a1b2c3', state: 'completed' },
        context as never,
      ),
    );
    expect(outcome).toEqual({ state: 'completed' });
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'INFO',
        message: 'record-backup done',
        service: 'pgsnap',
        step: 'record-backup',
        cluster: 'orders-db',
        backupId: '20260101T030000Z-a1b2c3',
        function_request_id: context.awsRequestId,
        result: { state: 'completed' },
      }),
    ]);
  });

  test('a step that fails: the error with its name, cause and the AWS request id, rethrown as it was', async () => {
    const cause = Object.assign(new Error('Request limit exceeded.'), {
      name: 'RequestLimitExceeded',
      $metadata: { httpStatusCode: 503, requestId: '5f1c2a1e-aws-request' },
    });
    const failure = Object.assign(new Error('CreateSnapshots failed', { cause }), {
      name: 'SnapshotFailedError',
    });
    const { lines, outcome } = await linesOf((logged) =>
      logged('create-snapshots', async () => {
        throw failure;
      })({ cluster: 'orders-db', backupId: '20260101T030000Z-a1b2c3' }, context as never),
    );
    expect(outcome).toBe(failure);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'ERROR',
      message: 'create-snapshots failed',
      step: 'create-snapshots',
      backupId: '20260101T030000Z-a1b2c3',
      function_request_id: context.awsRequestId,
      error: {
        name: 'SnapshotFailedError',
        message: 'CreateSnapshots failed',
        cause: { name: 'RequestLimitExceeded', $metadata: { requestId: '5f1c2a1e-aws-request' } },
      },
    });
  });

  test('the keys of one invocation do not leak into the next', async () => {
    const { lines } = await linesOf(async (logged) => {
      const step = logged('check-snapshots', async () => ({ completed: false }));
      await step({ cluster: 'orders-db', backupId: '20260101T030000Z-a1b2c3' });
      await step({ cluster: 'billing-db' });
    });
    expect(lines[1]).toMatchObject({ cluster: 'billing-db' });
    expect(lines[1]).not.toHaveProperty('backupId');
  });
});
