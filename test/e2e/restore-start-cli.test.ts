/**
 * `pgsnap restore start` and `pgsnap restores` as an operator runs them: the
 * bundled CLI against a local stand-in for the Step Functions API, and the
 * restore records in a file:// repository.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { openRepository } from '#domain/repository/open';
import type { RestoreRecord } from '#domain/repository/restore-record';
import { restoreStates as states } from '../../infra/restore/state-names.ts';
import { TaskTokenEndpoint } from '../../local/task-token-endpoint.ts';
import { pgsnap } from '../support/pgsnap.ts';

const stateMachineArn = 'arn:aws:states:eu-west-1:111122223333:stateMachine:pgsnap-prod-restore';
let endpoint: TaskTokenEndpoint;
let scratch: string;
let repo: string;

const record = (restoreId: string, fields: Partial<RestoreRecord> = {}): RestoreRecord => ({
  schemaVersion: 1,
  restoreId,
  cluster: 'orders-db',
  backupId: '20261121T143000Z-a1b2c3',
  mode: 'drill',
  state: 'completed',
  checks: { amcheck: 'all' },
  repository: repo,
  volumes: [],
  timings: {
    requestedAt: '2026-11-21T15:00:00.000Z',
    acceptingAt: '2026-11-21T15:04:10.000Z',
    finishedAt: '2026-11-21T15:06:00.000Z',
  },
  rtoSeconds: 250,
  updatedAt: '2026-11-21T15:06:00.000Z',
  ...fields,
});

beforeAll(async () => {
  endpoint = await TaskTokenEndpoint.start();
  scratch = mkdtempSync(join(tmpdir(), 'pgsnap-restore-cli-'));
  repo = `file://${scratch}`;
});
afterAll(async () => {
  await endpoint.close();
  rmSync(scratch, { recursive: true, force: true });
});
beforeEach(() => {
  endpoint.requests.length = 0;
  endpoint.handle('StartExecution', (input) => ({
    executionArn: `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${input.name}`,
    startDate: Date.now() / 1000,
  }));
});

const env = () => ({ ...endpoint.env, PGSNAP_RESTORE_STATE_MACHINE_ARN: stateMachineArn });

describe('pgsnap restore start', () => {
  test('starts an execution named after a new restoreId with the documented input', async () => {
    const result = await pgsnap(
      [
        'restore',
        'start',
        '--cluster',
        'orders-db',
        '--target-time',
        '2026-11-21T14:45:00Z',
        '--launch-template',
        'pgsnap-drill',
        '--subnet',
        'subnet-0123456789abcdef0',
        '--drill',
        '--initialization-rate',
        '200',
        '--check-sql',
        'select count(*) > 0 from orders',
        '--json',
      ],
      env(),
    );
    expect(result.code, result.stderr).toBe(0);
    const [start] = endpoint.requests;
    expect(start).toMatchObject({ action: 'StartExecution', input: { stateMachineArn } });
    const name = start!.input.name as string;
    expect(name).toMatch(/^r-\d{8}T\d{6}Z-[0-9a-f]{6}$/);
    expect(JSON.parse(start!.input.input as string)).toEqual({
      cluster: 'orders-db',
      backupId: 'latest',
      target: { time: '2026-11-21T14:45:00.000Z' },
      instance: { launch: { launchTemplate: 'pgsnap-drill', subnetId: 'subnet-0123456789abcdef0' } },
      mode: 'drill',
      initializationRate: 200,
      checks: {
        amcheck: 'all',
        sql: { database: 'postgres', query: 'select count(*) > 0 from orders', expect: 't' },
      },
      restoreId: name,
    });
    expect(JSON.parse(result.stdout)).toMatchObject({ restoreId: name });
  });

  test('--target-time keeps the microseconds given', async () => {
    const result = await pgsnap(
      [
        'restore',
        'start',
        '--cluster',
        'orders-db',
        '--instance-id',
        'i-0123456789abcdef0',
        '--target-time',
        '2026-11-21T15:45:00.123456+01:00',
        '--json',
      ],
      env(),
    );
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(endpoint.requests[0]!.input.input as string)).toMatchObject({
      target: { time: '2026-11-21T14:45:00.123456Z' },
    });
  });

  test('refuses conflicting or missing flags, saying what to give, and starts nothing', async () => {
    const cases: Array<[string[], RegExp]> = [
      [
        ['--instance-id', 'i-0123456789abcdef0', '--launch-template', 'lt'],
        /--instance-id and --launch-template conflict/,
      ],
      [[], /give --instance-id I .* or --launch-template LT --subnet S/],
      [['--launch-template', 'lt'], /--launch-template needs --subnet/],
      [['--instance-id', 'i-0123456789abcdef0', '--target-time', 'yesterday'], /is not a time; use ISO 8601/],
      [
        ['--instance-id', 'i-0123456789abcdef0', '--target-lsn', '0/1', '--target-immediate'],
        /--target-lsn and --target-immediate conflict/,
      ],
      [['--instance-id', 'i-0123456789abcdef0', '--standby'], /--standby needs --primary-conninfo/],
      [['--instance-id', 'i-0123456789abcdef0', '--initialization-rate', '50'], /initializationRate/],
      [['--instance-id', 'i-bad'], /instance/],
    ];
    for (const [flags, message] of cases) {
      const result = await pgsnap(['restore', 'start', '--cluster', 'orders-db', ...flags], env());
      expect(result.code, flags.join(' ')).toBe(2);
      expect(result.stderr, flags.join(' ')).toMatch(message);
    }
    expect(endpoint.requests).toEqual([]);
  });

  test('--wait prints each phase, then the record, and exits 1 when the restore failed', async () => {
    const restoreId = 'r-20261121T150000Z-0c0ffe';
    const repository = await openRepository(repo, 'orders-db');
    await repository.writeRestoreRecord(
      record(restoreId, {
        state: 'failed',
        failure: {
          error: 'WalGapError',
          reason: 'WAL segment 000000010000000000000004 is missing',
          at: '2026-11-21T15:00:02.000Z',
        },
      }),
    );
    repository.close();
    let calls = 0;
    endpoint.handle('GetExecutionHistory', () => {
      calls += 1;
      const events = [
        {
          id: 1,
          type: 'TaskStateEntered',
          timestamp: Date.now() / 1000,
          stateEnteredEventDetails: { name: states.prepare },
        },
        {
          id: 2,
          type: 'ExecutionFailed',
          timestamp: Date.now() / 1000,
          executionFailedEventDetails: {
            error: 'WalGapError',
            cause: 'WAL segment 000000010000000000000004 is missing',
          },
        },
      ];
      return { events: calls === 1 ? events.slice(0, 1) : events };
    });
    const result = await pgsnap(
      [
        'restore',
        'start',
        '--cluster',
        'orders-db',
        '--instance-id',
        'i-0123456789abcdef0',
        '--restore-id',
        restoreId,
        '--wait',
        '--repo',
        repo,
      ],
      env(),
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(states.prepare);
    expect(result.stdout).toMatch(/status:\s+FAILED/);
    expect(result.stdout).toMatch(/failure:\s+WalGapError: WAL segment 000000010000000000000004 is missing/);
  });
});

describe('pgsnap restores', () => {
  test('list shows every restore with its outcome and RTO; show prints one; backups list says when each was drilled', async () => {
    const { testManifest } = await import('../support/manifests.ts');
    const repository = await openRepository(repo, 'orders-db');
    await repository.writeRestoreRecord(record('r-20261122T150000Z-aaaaaa'));
    await repository.writeManifest(testManifest({ state: 'completed' }));
    await repository.writeManifest(testManifest({ backupId: '20261122T143000Z-b1b2b3', state: 'completed' }));
    repository.close();
    const backups = await pgsnap(['backups', 'list', '--repo', repo, '--cluster', 'orders-db'], env());
    expect(backups.stdout).toMatch(/20261121T143000Z-a1b2c3 .* 2026-11-21T15:06:00Z/);
    expect(backups.stdout).toMatch(/20261122T143000Z-b1b2b3 .* never/);
    const list = await pgsnap(['restores', 'list', '--repo', repo, '--cluster', 'orders-db'], env());
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(
      /r-20261122T150000Z-aaaaaa\s+drill\s+completed\s+20261121T143000Z-a1b2c3\s+250s/,
    );
    const show = await pgsnap(
      ['restores', 'show', 'r-20261122T150000Z-aaaaaa', '--repo', repo, '--cluster', 'orders-db'],
      env(),
    );
    expect(show.stdout).toMatch(/accepting connections:\s+2026-11-21T15:04:10.000Z \(\+250s\)/);
    expect(show.stdout).toMatch(/RTO:\s+250.0 s/);
    const missing = await pgsnap(
      ['restores', 'show', 'r-20261122T150000Z-bbbbbb', '--repo', repo, '--cluster', 'orders-db'],
      env(),
    );
    // A record that is not there is a precondition (exit 3), as for every command that needs one.
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/pgsnap restores list shows those there are/);
  });

  test('a backup that is not there is exit 3 for backups show and for restore alike, naming the catalog', async () => {
    const flags = ['--repo', repo, '--cluster', 'orders-db'];
    const show = await pgsnap(['backups', 'show', '20261125T143000Z-dddddd', ...flags], env());
    const restore = await pgsnap(
      ['restore', '--backup-id', '20261125T143000Z-dddddd', '--pgdata', join(scratch, 'restored'), ...flags],
      env(),
    );
    for (const result of [show, restore]) {
      expect(result.code, result.stderr).toBe(3);
      expect(result.stderr).toMatch(/there is no backup 20261125T143000Z-dddddd .*pgsnap backups list shows/);
    }
  });
});
