/**
 * Each input rule is kept once and the other places that check it are made
 * from it. These tests hold every such place to the same answer on values at
 * the edges of the rule, so that a copy that drifted fails here and not at
 * SendCommand, CreateGrant or a Lambda's first line in production.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { parseExecutionInput } from '#domain/backup/execution';
import { maxLabelLength, validateLabel } from '#domain/backup/input';
import { type RetentionPolicy, validatePolicy } from '#domain/backup/retention';
import { newBackupId, validateBackupId, validateClusterName } from '#domain/ids';
import { validateManifest } from '#domain/repository/manifest';
import { handler as applyRetention } from '../../functions/apply-retention.ts';
import { checkSnapshotsHandler } from '../../functions/check-snapshots.ts';
import { handler as copySnapshots } from '../../functions/copy-snapshots.ts';
import { handler as recordBackup } from '../../functions/record-backup.ts';
import { handler as recordCopies } from '../../functions/record-copies.ts';
import { agentDocumentParameters } from '../../infra/backup/agent-document.ts';
import { scheduleSchema } from '../../infra/config/config.ts';
import { retentionSchema } from '../../infra/dr/dr-config.ts';
import { setLocalCatalog } from '../../local/state-machine.ts';
import { testManifest } from '../support/manifests.ts';

const accepts = (check: () => unknown) => {
  try {
    check();
    return true;
  } catch {
    return false;
  }
};
const documentAccepts = (name: 'label' | 'backupId' | 'cluster', value: string) =>
  new RegExp(agentDocumentParameters[name].allowedPattern).test(value);

describe('labels: the CLI, the first step, the schedules and the SSM document accept the same ones', () => {
  const longest = `A${'b'.repeat(maxLabelLength - 1)}`;
  const labels = [
    'nightly',
    'a',
    '/',
    '=x',
    'weekly 2026/11:21 @x+y=z,w-v_u.t',
    'trailing space ',
    'trailing-dash-',
    longest,
    `${longest}c`,
    'x'.repeat(200),
    'x'.repeat(1024),
    '',
    ' leading space',
    '-x',
    '--fast',
    'a\nb',
    'a\tb',
    "it's",
    'a$b',
    'a`b`',
    'a;b',
    'a\\b',
    'a"b',
    'é',
    'a\u00a0b',
    'a*b',
  ];

  test.each(labels.map((l) => [JSON.stringify(l).slice(0, 40), l]))('%s', (_, label) => {
    const cli = accepts(() => validateLabel(label));
    expect(documentAccepts('label', label)).toBe(cli);
    expect(accepts(() => parseExecutionInput({ cluster: 'orders-db', label }))).toBe(cli);
    expect(scheduleSchema.safeParse({ name: 'n', expression: 'rate(1 day)', label }).success).toBe(cli);
  });

  test('the longest label the first step accepts is accepted by the document, one more is refused by both', () => {
    expect(parseExecutionInput({ cluster: 'orders-db', label: longest }).label).toBe(longest);
    expect(documentAccepts('label', longest)).toBe(true);
    expect(() => parseExecutionInput({ cluster: 'orders-db', label: 'x'.repeat(200) })).toThrow(
      /200 characters; a backup takes at most 128/,
    );
  });
});

describe('backupIds: the CLI, the manifest schema and the SSM document accept the same ones', () => {
  const manifestWith = (backupId: string) => testManifest({ backupId });
  const ids = [
    newBackupId(),
    '20261121T143000Z-a1b2c3',
    '00000000T000000Z-000000',
    '20261121T143000Z-A1B2C3',
    '20261121T143000Z-a1b2c',
    '20261121T143000Z-a1b2c3d',
    '20261121T143000-a1b2c3',
    '2026-11-21T143000Z-a1b2c3',
    '20261121T143000Z-a1b2c3\n',
    ' 20261121T143000Z-a1b2c3',
    '٢٠٢٦١١٢١T143000Z-a1b2c3',
    '../../etc',
    '',
  ];
  test.each(ids.map((id) => [JSON.stringify(id), id]))('%s', (_, id) => {
    const cli = accepts(() => validateBackupId(id));
    expect(documentAccepts('backupId', id)).toBe(cli);
    expect(accepts(() => validateManifest(manifestWith(id), 'manifest.json'))).toBe(cli);
  });
});

describe('cluster names: the CLI and the SSM document accept the same ones', () => {
  const names = [
    'orders-db',
    'a',
    'pg.15_main',
    `a${'b'.repeat(62)}`,
    `a${'b'.repeat(63)}`,
    'Orders',
    '-a',
    '.a',
    '',
  ];
  test.each(names.map((n) => [JSON.stringify(n), n]))('%s', (_, name) => {
    expect(documentAccepts('cluster', name)).toBe(accepts(() => validateClusterName(name)));
  });
});

describe('retention policies: the CLI, the configuration and the apply-retention Lambda accept the same ones', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  /** The Lambda reads the policy from its catalog; then, with nothing in the repository, has nothing to do. */
  const lambdaAccepts = async (policy: RetentionPolicy) => {
    const empty = `file://${mkdtempSync(join(tmpdir(), 'pgsnap-policy-'))}`;
    setLocalCatalog({
      clusters: [
        {
          name: 'orders-db',
          fastCheckpoint: false,
          maxBackupMinutes: 60,
          repository: empty,
          retention: { ...policy, schedule: 'rate(1 day)' },
        },
      ],
    });
    return applyRetention({ cluster: 'orders-db', repository: empty }).then(
      () => true,
      () => false,
    );
  };

  const policies: RetentionPolicy[] = [
    { keepLast: 1 },
    { keepLast: 30 },
    { keepDays: 7 },
    { keepDays: 0.5 },
    { keepLast: 3, keepDays: 14 },
    { keepLast: 0 },
    { keepLast: -1 },
    { keepLast: 2.5 },
    { keepDays: 0 },
    { keepDays: -7 },
    { keepLast: 1, keepDays: 0 },
  ];
  test.each(policies.map((p) => [JSON.stringify(p), p]))('%s', async (_, policy) => {
    const cli = accepts(() => validatePolicy(policy));
    expect(retentionSchema.safeParse(policy).success).toBe(cli);
    expect(retentionSchema.safeParse({ keepLast: 1, dr: policy }).success).toBe(cli);
    expect(await lambdaAccepts(policy)).toBe(cli);
  });
});

describe('the snapshot set: the four handlers that take it refuse the same lists', () => {
  const saved = { ...process.env };
  beforeEach(() => {
    process.env.AWS_REGION = 'eu-west-1';
    process.env.PGSNAP_FIRST_POLL_SECONDS = '15';
    process.env.PGSNAP_MAX_POLL_SECONDS = '300';
    process.env.PGSNAP_SNAPSHOT_HOURS = '24';
    process.env.PGSNAP_DR = JSON.stringify({
      sourceAccount: '111122223333',
      sourceRegion: 'eu-west-1',
      account: '111122223333',
      region: 'us-west-2',
      kmsKeyArn: 'arn:aws:kms:us-west-2:111122223333:alias/pgsnap-prod-dr',
      clusters: { 'orders-db': { repository: 'file:///nowhere' } },
    });
  });
  afterEach(() => {
    process.env = { ...saved };
  });

  const target = { cluster: 'orders-db', backupId: '20261121T143000Z-a1b2c3', repository: 'file:///nowhere' };
  const handlers: Array<[string, (snapshots: unknown) => Promise<unknown>]> = [
    [
      'check-snapshots',
      (snapshots) =>
        checkSnapshotsHandler({} as never)({
          snapshotSet: { snapshots, createdAt: '2026-11-21T14:30:00.000Z' },
        }),
    ],
    ['copy-snapshots', (snapshots) => copySnapshots({ ...target, snapshotSet: { snapshots } })],
    [
      'record-copies',
      (snapshots) =>
        recordCopies({
          ...target,
          snapshotSet: { snapshots },
          outcome: 'completed',
          dr: {
            account: '111122223333',
            region: 'us-west-2',
            copies: [],
            startedAt: '2026-11-21T14:30:00.000Z',
          },
        }),
    ],
    ['record-backup', (snapshots) => recordBackup({ ...target, state: 'snapshotting', snapshots })],
  ];
  const lists: Array<[string, unknown]> = [
    ['empty', []],
    ['a snapshot without its volume', [{ snapshotId: 'snap-1', state: 'pending' }]],
    ['a snapshot without its state', [{ snapshotId: 'snap-1', volumeId: 'vol-1' }]],
    ['a snapshot id that is not a string', [{ snapshotId: 1, volumeId: 'vol-1', state: 'pending' }]],
  ];
  test.each(lists)('%s', async (_, snapshots) => {
    for (const [name, run] of handlers) {
      await expect(run(snapshots), name).rejects.toMatchObject({
        name: 'InvalidInputError',
        message: expect.stringMatching(/snapshots/),
      });
    }
  });
});
