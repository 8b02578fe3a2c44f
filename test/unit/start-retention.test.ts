/**
 * A retention schedule's start (functions/start-retention.ts): apply-retention invoked asynchronously once per
 * cluster retained on the schedule's cadence, listed in the catalog or found by tags (a cluster directory of
 * the discovered repository), and no other.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { CatalogInput } from '#domain/catalog';
import { handler as startRetention } from '../../functions/start-retention.ts';
import { setLocalCatalog } from '../../local/state-machine.ts';

const lambda = mockClient(LambdaClient);
const functionName = 'pgsnap-test-ApplyRetention';
let dir: string;
let discovered: string;

const listed = (name: string, schedule?: string) => ({
  name,
  fastCheckpoint: false,
  maxBackupMinutes: 60,
  repository: 's3://backups/pgsnap/',
  ...(schedule ? { retention: { keepLast: 7, schedule } } : {}),
});

function catalog(discoveredRetention?: Record<string, unknown>): Omit<CatalogInput, 'schemaVersion'> {
  return {
    clusters: [
      listed('orders-db', 'rate(1 day)'),
      listed('billing-db', 'cron(0 4 * * ? *)'),
      listed('scratch-db'),
      // Listed, and also a directory of the discovered repository: its own policy, never the defaults'.
      { ...listed('shared-db', 'cron(0 4 * * ? *)'), repository: discovered },
    ],
    discover: {
      tag: 'pgsnap:cluster',
      repository: discovered,
      defaults: {
        fastCheckpoint: false,
        maxBackupMinutes: 60,
        ...(discoveredRetention ? { retention: discoveredRetention } : {}),
      },
    },
  };
}

/** What apply-retention was asked to do, in the order asked. */
const invoked = () =>
  lambda.commandCalls(InvokeCommand).map((call) => {
    const { FunctionName, InvocationType, Payload } = call.args[0].input;
    return {
      FunctionName,
      InvocationType,
      payload: JSON.parse(Buffer.from(Payload as Uint8Array).toString('utf8')),
    };
  });

beforeEach(() => {
  lambda.reset();
  lambda.on(InvokeCommand).resolves({ StatusCode: 202 });
  dir = mkdtempSync(join(tmpdir(), 'pgsnap-start-retention-'));
  // The discovered repository: two clusters' directories, a listed cluster's, the catalogs' and a stray file.
  for (const name of ['tagged-a', 'tagged-b', 'shared-db', '_pgsnap']) {
    mkdirSync(join(dir, name, 'backups'), { recursive: true });
  }
  writeFileSync(join(dir, 'README.txt'), 'not a cluster');
  discovered = `file://${dir}`;
  process.env.PGSNAP_APPLY_RETENTION_FUNCTION = functionName;
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('start-retention', () => {
  test('invokes apply-retention asynchronously once per listed cluster on the cadence, and per cluster found by tags', async () => {
    setLocalCatalog(catalog({ keepDays: 14, schedule: 'rate(1 day)' }));
    const result = await startRetention({ schedule: 'rate(1 day)' });
    expect(invoked()).toEqual([
      {
        FunctionName: functionName,
        InvocationType: 'Event',
        payload: { cluster: 'orders-db', repository: 's3://backups/pgsnap/' },
      },
      {
        FunctionName: functionName,
        InvocationType: 'Event',
        payload: { cluster: 'tagged-a', repository: discovered },
      },
      {
        FunctionName: functionName,
        InvocationType: 'Event',
        payload: { cluster: 'tagged-b', repository: discovered },
      },
    ]);
    expect(result).toEqual({ started: ['orders-db', 'tagged-a', 'tagged-b'] });
  });

  test('another cadence starts only its own clusters; without a discovered policy no directory is retained', async () => {
    setLocalCatalog(catalog());
    await startRetention({ schedule: 'cron(0 4 * * ? *)' });
    expect(invoked().map((i) => i.payload)).toEqual([
      { cluster: 'billing-db', repository: 's3://backups/pgsnap/' },
      { cluster: 'shared-db', repository: discovered },
    ]);
    lambda.resetHistory();
    await startRetention({ schedule: 'rate(1 day)' });
    expect(invoked().map((i) => i.payload.cluster)).toEqual(['orders-db']);
  });

  test('a cluster whose invocation is refused does not stop the others, and the start fails naming it', async () => {
    setLocalCatalog(catalog({ keepLast: 3, schedule: 'rate(1 day)' }));
    lambda
      .on(InvokeCommand, {
        Payload: Buffer.from(JSON.stringify({ cluster: 'tagged-a', repository: discovered })),
      })
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'TooManyRequestsException' }));
    await expect(startRetention({ schedule: 'rate(1 day)' })).rejects.toThrow(
      expect.objectContaining({
        name: 'RetentionStartError',
        message: expect.stringMatching(/1 of 3 clusters on rate\(1 day\).*tagged-a: Rate exceeded/),
      }),
    );
    expect(invoked().map((i) => i.payload.cluster)).toEqual(['orders-db', 'tagged-a', 'tagged-b']);
  });

  test('an event without a cadence is refused before any invocation', async () => {
    setLocalCatalog(catalog());
    await expect(startRetention({ cluster: 'orders-db' })).rejects.toThrow(/start-retention event/);
    expect(invoked()).toEqual([]);
  });
});
