/**
 * The DR copy handlers against mocked EC2, KMS and STS: every call is checked
 * for the region and credentials (so the account) it was sent with, and the
 * key, principal and tags it carries; the repositories are real directories,
 * checked for what a restore from DR would read.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CopySnapshotCommand,
  DeleteSnapshotCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  LockSnapshotCommand,
  ModifySnapshotAttributeCommand,
} from '@aws-sdk/client-ec2';
import {
  CreateGrantCommand,
  DescribeKeyCommand,
  KMSClient,
  ListGrantsCommand,
  RevokeGrantCommand,
} from '@aws-sdk/client-kms';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { type AwsStub, mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { proposedManifestName } from '#domain/ebs/dr-copies';
import type { DrTarget } from '#domain/ebs/dr-target';
import { type Manifest, parseManifest } from '#domain/repository/manifest';
import { openRepository } from '#domain/repository/open';
import { handler as checkCopies } from '../../functions/check-copies.ts';
import { handler as copySnapshots } from '../../functions/copy-snapshots.ts';
import { handler as recordCopies } from '../../functions/record-copies.ts';
import { testManifest } from '../support/manifests.ts';

const ec2 = mockClient(EC2Client);
const kms = mockClient(KMSClient);
const sts = mockClient(STSClient);

const backupId = '20261121T143000Z-a1b2c3';
const source = { account: '111122223333', region: 'eu-west-1' };
const drAccount = '444455556666';
const sourceKey = 'arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555';
const drRole = 'arn:aws:iam::444455556666:role/pgsnap-prod-dr-copy';
const assumed = { AccessKeyId: 'ASIADRACCOUNT', SecretAccessKey: 'secret', SessionToken: 'token' };
const snapshotSet = {
  snapshots: [
    { snapshotId: 'snap-0000000000000000a', volumeId: 'vol-0000000000000000b', state: 'completed' },
    { snapshotId: 'snap-0000000000000000b', volumeId: 'vol-0000000000000000c', state: 'completed' },
  ],
};

let dir: string;
let sourceUrl: string;
let drUrl: string;

const completed: Manifest = testManifest({
  backupId,
  state: 'completed',
  stopLsn: '0/2000138',
  stopWalFile: '000000010000000000000002',
  snapshots: snapshotSet.snapshots.map((s) => ({ provider: 'ebs', ...s })),
  timings: { startedAt: '2026-11-21T14:30:00.000Z', completedAt: '2026-11-21T14:40:00.000Z' },
  updatedAt: '2026-11-21T14:40:00.000Z',
});

function target(kind: 'same-account' | 'cross-account'): DrTarget {
  const common = {
    sourceAccount: source.account,
    sourceRegion: source.region,
    region: 'us-west-2',
    clusters: { 'orders-db': { repository: drUrl } },
  };
  return kind === 'same-account'
    ? {
        ...common,
        account: source.account,
        kmsKeyArn: 'arn:aws:kms:us-west-2:111122223333:alias/pgsnap-prod-dr',
      }
    : {
        ...common,
        account: drAccount,
        kmsKeyArn: 'arn:aws:kms:us-west-2:444455556666:alias/pgsnap-prod-dr',
        roleArn: drRole,
        externalId: 'pgsnap-prod-7f3a',
      };
}

function useTarget(kind: 'same-account' | 'cross-account'): DrTarget {
  const t = target(kind);
  process.env.PGSNAP_DR = JSON.stringify(t);
  return t;
}

/** Region and access key id of the client that sent each call of `command`. */
// biome-ignore lint/suspicious/noExplicitAny: the stub's commands are typed per client
async function sentBy(stub: AwsStub<any, any, any>, command: any) {
  return Promise.all(
    stub.commandCalls(command).map(async (call) => {
      const client = call.thisValue as EC2Client;
      const credentials = await client.config.credentials();
      return {
        region: await client.config.region(),
        accessKeyId: credentials.accessKeyId,
        input: call.args[0].input as Record<string, unknown>,
      };
    }),
  );
}

async function sourceRepository() {
  return openRepository(sourceUrl, 'orders-db');
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pgsnap-dr-'));
  sourceUrl = `file://${dir}/source`;
  drUrl = `file://${dir}/dr`;
  mkdirSync(join(dir, 'source'));
  mkdirSync(join(dir, 'dr'));
  ec2.reset();
  kms.reset();
  sts.reset();
  // The Lambda's own credentials; the DR account's come from AssumeRole.
  process.env.AWS_ACCESS_KEY_ID = 'AKIASOURCEACCOUNT';
  process.env.AWS_SECRET_ACCESS_KEY = 'secret';
  process.env.AWS_REGION = source.region;
  process.env.PGSNAP_FIRST_POLL_SECONDS = '15';
  process.env.PGSNAP_MAX_POLL_SECONDS = '300';
  process.env.PGSNAP_COPY_HOURS = '24';
  sts
    .on(AssumeRoleCommand)
    .resolves({ Credentials: { ...assumed, Expiration: new Date(Date.now() + 900_000) } });
  ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
  let next = 0;
  ec2.on(CopySnapshotCommand).callsFake(() => ({ SnapshotId: `snap-dr${String(++next).padStart(14, '0')}` }));
  const repository = await sourceRepository();
  await repository.pin(
    { systemIdentifier: completed.systemIdentifier, walSegmentSize: completed.walSegmentSize },
    'test',
  );
  const label = await repository.putArtifact(
    backupId,
    'backup_label',
    Buffer.from('START WAL LOCATION: 0/2000028\n'),
  );
  await repository.writeManifest({ ...completed, artifacts: [label] });
  repository.close();
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

const event = (extra: Record<string, unknown> = {}) => ({
  cluster: 'orders-db',
  backupId,
  repository: sourceUrl,
  snapshotSet,
  ...extra,
});

describe('copy-snapshots to another region of the same account', () => {
  test('copies each snapshot in the DR region with the DR key and the backup tags, under its own credentials', async () => {
    useTarget('same-account');
    const result = await copySnapshots(event());
    expect(sts.commandCalls(AssumeRoleCommand)).toHaveLength(0);
    expect(ec2.commandCalls(ModifySnapshotAttributeCommand)).toHaveLength(0);
    expect(kms.commandCalls(CreateGrantCommand)).toHaveLength(0);
    const copies = await sentBy(ec2, CopySnapshotCommand);
    expect(copies).toHaveLength(2);
    for (const [index, copy] of copies.entries()) {
      expect(copy.region).toBe('us-west-2');
      expect(copy.accessKeyId).toBe('AKIASOURCEACCOUNT');
      expect(copy.input).toMatchObject({
        SourceRegion: 'eu-west-1',
        SourceSnapshotId: snapshotSet.snapshots[index]!.snapshotId,
        Encrypted: true,
        KmsKeyId: 'arn:aws:kms:us-west-2:111122223333:alias/pgsnap-prod-dr',
        TagSpecifications: [
          {
            ResourceType: 'snapshot',
            Tags: expect.arrayContaining([
              { Key: 'pgsnap:cluster', Value: 'orders-db' },
              { Key: 'pgsnap:backup-id', Value: backupId },
              { Key: 'pgsnap:source-snapshot-id', Value: snapshotSet.snapshots[index]!.snapshotId },
            ]),
          },
        ],
      });
    }
    expect(result.copies).toEqual([
      expect.objectContaining({
        account: source.account,
        region: 'us-west-2',
        snapshotId: 'snap-dr00000000000001',
        state: 'pending',
      }),
      expect.objectContaining({
        account: source.account,
        region: 'us-west-2',
        snapshotId: 'snap-dr00000000000002',
        state: 'pending',
      }),
    ]);
  });

  test('writes cluster.json, the artifacts and the proposed manifest, but no DR manifest, and records the copies at the source', async () => {
    useTarget('same-account');
    await copySnapshots(event());
    const dr = await openRepository(drUrl, 'orders-db');
    const src = await sourceRepository();
    try {
      expect((await dr.requirePin()).systemIdentifier).toBe(completed.systemIdentifier);
      // The DR stack's recorder records the DR manifest from the copies (record-dr-backup.test.ts).
      expect(await dr.readManifest(backupId)).toBeUndefined();
      const proposed = parseManifest(
        (await dr.store.get(dr.backupKey(backupId, proposedManifestName)))!,
        'the proposal',
      );
      expect(proposed).toMatchObject({ backupId, state: 'completed', snapshots: completed.snapshots });
      expect((await dr.readArtifact(backupId, proposed.artifacts[0]!)).toString()).toContain('START WAL');
      const sourceManifest = (await src.readManifest(backupId))!;
      expect(sourceManifest.state).toBe('completed');
      expect(sourceManifest.snapshots.map((s) => s.snapshotId)).toEqual(
        snapshotSet.snapshots.map((s) => s.snapshotId),
      );
      expect(sourceManifest.copies?.map((c) => c.snapshotId)).toEqual([
        'snap-dr00000000000001',
        'snap-dr00000000000002',
      ]);
    } finally {
      dr.close();
      src.close();
    }
  });

  test('run again, it finds the copies it started by their tags and starts no second one', async () => {
    useTarget('same-account');
    ec2.on(DescribeSnapshotsCommand).resolves({
      Snapshots: [
        {
          SnapshotId: 'snap-dr-earlier',
          State: 'pending',
          Tags: [{ Key: 'pgsnap:source-snapshot-id', Value: snapshotSet.snapshots[0]!.snapshotId }],
        },
      ],
    });
    const result = await copySnapshots(event());
    expect(ec2.commandCalls(CopySnapshotCommand).map((c) => c.args[0].input.SourceSnapshotId)).toEqual([
      snapshotSet.snapshots[1]!.snapshotId,
    ]);
    expect(result.copies[0]!.snapshotId).toBe('snap-dr-earlier');
  });

  test('a cluster without a DR repository is not copied', async () => {
    process.env.PGSNAP_DR = JSON.stringify({ ...target('same-account'), clusters: {} });
    expect((await copySnapshots(event())).copies).toEqual([]);
    expect(ec2.commandCalls(CopySnapshotCommand)).toHaveLength(0);
  });
});

describe('copy-snapshots to another account', () => {
  beforeEach(() => {
    ec2
      .on(DescribeSnapshotsCommand, { SnapshotIds: snapshotSet.snapshots.map((s) => s.snapshotId) })
      .resolves({
        Snapshots: snapshotSet.snapshots.map((s) => ({
          SnapshotId: s.snapshotId,
          Encrypted: true,
          KmsKeyId: sourceKey,
        })),
      });
    kms.on(DescribeKeyCommand).resolves({ KeyMetadata: { KeyId: sourceKey, KeyManager: 'CUSTOMER' } });
    kms.on(CreateGrantCommand).resolves({ GrantId: 'grant-1' });
  });

  test('shares each snapshot with the DR account and grants the DR role the source key, in the source region', async () => {
    useTarget('cross-account');
    await copySnapshots(event());
    const shares = await sentBy(ec2, ModifySnapshotAttributeCommand);
    expect(shares.map((s) => s.input)).toEqual(
      snapshotSet.snapshots.map((s) => ({
        SnapshotId: s.snapshotId,
        Attribute: 'createVolumePermission',
        OperationType: 'add',
        UserIds: [drAccount],
      })),
    );
    expect(shares.every((s) => s.region === 'eu-west-1' && s.accessKeyId === 'AKIASOURCEACCOUNT')).toBe(true);
    const grants = await sentBy(kms, CreateGrantCommand);
    expect(grants).toHaveLength(1);
    expect(grants[0]).toMatchObject({
      region: 'eu-west-1',
      accessKeyId: 'AKIASOURCEACCOUNT',
      input: {
        KeyId: sourceKey,
        GranteePrincipal: drRole,
        Operations: [
          'Decrypt',
          'DescribeKey',
          'CreateGrant',
          'ReEncryptFrom',
          'GenerateDataKeyWithoutPlaintext',
        ],
      },
    });
  });

  test('copies in the DR account through the role assumed with its external id, re-encrypting with the DR key', async () => {
    useTarget('cross-account');
    await copySnapshots(event());
    expect(sts.commandCalls(AssumeRoleCommand).map((c) => c.args[0].input)).toEqual([
      expect.objectContaining({ RoleArn: drRole, ExternalId: 'pgsnap-prod-7f3a' }),
    ]);
    const copies = await sentBy(ec2, CopySnapshotCommand);
    expect(copies).toHaveLength(2);
    for (const copy of copies) {
      expect(copy.region).toBe('us-west-2');
      expect(copy.accessKeyId).toBe('ASIADRACCOUNT');
      expect(copy.input).toMatchObject({
        SourceRegion: 'eu-west-1',
        Encrypted: true,
        KmsKeyId: 'arn:aws:kms:us-west-2:444455556666:alias/pgsnap-prod-dr',
      });
    }
    // The copies are looked up in the DR account, not the source.
    const lookups = (await sentBy(ec2, DescribeSnapshotsCommand)).filter((c) => c.input.Filters);
    expect(lookups.map((l) => [l.region, l.accessKeyId])).toEqual([['us-west-2', 'ASIADRACCOUNT']]);
  });

  test('refuses snapshots under the AWS managed key, which cannot be shared, before sharing or copying anything', async () => {
    useTarget('cross-account');
    kms.on(DescribeKeyCommand).resolves({ KeyMetadata: { KeyId: sourceKey, KeyManager: 'AWS' } });
    await expect(copySnapshots(event())).rejects.toMatchObject({
      name: 'CopyFailedError',
      message: expect.stringContaining('customer managed key'),
    });
    expect(ec2.commandCalls(ModifySnapshotAttributeCommand)).toHaveLength(0);
    expect(ec2.commandCalls(CopySnapshotCommand)).toHaveLength(0);
  });
});

describe('check-copies', () => {
  const copySet = {
    account: drAccount,
    region: 'us-west-2',
    startedAt: new Date().toISOString(),
    copies: [
      {
        account: drAccount,
        region: 'us-west-2',
        sourceSnapshotId: 'snap-a',
        snapshotId: 'snap-dr1',
        state: 'pending',
      },
      {
        account: drAccount,
        region: 'us-west-2',
        sourceSnapshotId: 'snap-b',
        snapshotId: 'snap-dr2',
        state: 'pending',
      },
    ],
  };

  test('polls the copies in the DR account and region, waiting for what their Progress says is left', async () => {
    useTarget('cross-account');
    const startTime = new Date(Date.now() - 200_000);
    ec2.on(DescribeSnapshotsCommand).resolves({
      Snapshots: [
        { SnapshotId: 'snap-dr1', State: 'completed', Progress: '100%', StartTime: startTime },
        { SnapshotId: 'snap-dr2', State: 'pending', Progress: '40%', StartTime: startTime },
      ],
    });
    // 40 % in 200 s: 300 s left, but no longer than the copy has run, and no more than the longest wait.
    const first = await checkCopies({ backupId, dr: copySet });
    // Not moved since: its average rate again; 10 % in the 100 s since: 60 % left is 600 s; both capped at its age.
    const second = await checkCopies({ backupId, dr: copySet, copyPoll: first });
    const third = await checkCopies({
      backupId,
      dr: copySet,
      copyPoll: {
        ...second,
        at: new Date(Date.now() - 100_000).toISOString(),
        seen: [{ snapshotId: 'snap-dr2', percent: 30 }],
      },
    });
    expect([first, second, third].map((p) => p.attempt)).toEqual([1, 2, 3]);
    expect([first, second, third].every((p) => p.waitSeconds >= 200 && p.waitSeconds <= 201)).toBe(true);
    expect(third).toMatchObject({ completed: false, progress: '40%' });
    expect(third.copies.map((c) => c.state)).toEqual(['completed', 'pending']);
    const polls = await sentBy(ec2, DescribeSnapshotsCommand);
    expect(polls.every((p) => p.region === 'us-west-2' && p.accessKeyId === 'ASIADRACCOUNT')).toBe(true);
  });

  test('is completed when every copy is', async () => {
    useTarget('cross-account');
    ec2.on(DescribeSnapshotsCommand).resolves({
      Snapshots: [
        { SnapshotId: 'snap-dr1', State: 'completed', Progress: '100%' },
        { SnapshotId: 'snap-dr2', State: 'completed', Progress: '100%' },
      ],
    });
    expect(await checkCopies({ backupId, dr: copySet })).toMatchObject({ completed: true, progress: '100%' });
  });

  test('a copy in error fails the copy with CopyFailedError naming it', async () => {
    useTarget('cross-account');
    ec2.on(DescribeSnapshotsCommand).resolves({
      Snapshots: [
        { SnapshotId: 'snap-dr1', State: 'completed' },
        { SnapshotId: 'snap-dr2', State: 'error', StateMessage: 'KMS key not accessible' },
      ],
    });
    await expect(checkCopies({ backupId, dr: copySet })).rejects.toMatchObject({
      name: 'CopyFailedError',
      message: expect.stringContaining('snap-dr2'),
    });
  });

  test('copies still pending after the copy hours are given up', async () => {
    useTarget('cross-account');
    ec2.on(DescribeSnapshotsCommand).resolves({
      Snapshots: [
        { SnapshotId: 'snap-dr1', State: 'pending' },
        { SnapshotId: 'snap-dr2', State: 'pending' },
      ],
    });
    const old = { ...copySet, startedAt: new Date(Date.now() - 25 * 3_600_000).toISOString() };
    await expect(checkCopies({ backupId, dr: old })).rejects.toMatchObject({ name: 'TimeoutError' });
  });
});

describe('record-copies', () => {
  beforeEach(() => {
    ec2
      .on(DescribeSnapshotsCommand, { SnapshotIds: snapshotSet.snapshots.map((s) => s.snapshotId) })
      .resolves({
        Snapshots: snapshotSet.snapshots.map((s) => ({
          SnapshotId: s.snapshotId,
          Encrypted: true,
          KmsKeyId: sourceKey,
        })),
      });
    kms.on(DescribeKeyCommand).resolves({ KeyMetadata: { KeyId: sourceKey, KeyManager: 'CUSTOMER' } });
    kms.on(CreateGrantCommand).resolves({ GrantId: 'grant-1' });
    kms.on(ListGrantsCommand).resolves({
      Grants: [
        { GrantId: 'grant-1', Name: `pgsnap-dr-${backupId}` },
        { GrantId: 'grant-other', Name: 'someone-elses' },
      ],
    });
  });

  test('completed: both manifests record the completed copies; the sharing and the grant are taken back', async () => {
    useTarget('cross-account');
    const dr = await copySnapshots(event());
    ec2.resetHistory();
    kms.resetHistory();
    await recordCopies(event({ outcome: 'completed', dr }));
    const src = await sourceRepository();
    const drRepo = await openRepository(drUrl, 'orders-db');
    try {
      const sourceManifest = (await src.readManifest(backupId))!;
      expect(sourceManifest.state).toBe('completed');
      expect(sourceManifest.copies?.map((c) => [c.account, c.region, c.state])).toEqual([
        [drAccount, 'us-west-2', 'completed'],
        [drAccount, 'us-west-2', 'completed'],
      ]);
      // The source records no manifest in DR: the DR stack's recorder does.
      expect(await drRepo.readManifest(backupId)).toBeUndefined();
    } finally {
      src.close();
      drRepo.close();
    }
    const revoked = await sentBy(kms, RevokeGrantCommand);
    expect(revoked).toEqual([
      {
        region: 'eu-west-1',
        accessKeyId: 'AKIASOURCEACCOUNT',
        input: { KeyId: sourceKey, GrantId: 'grant-1' },
      },
    ]);
    expect((await sentBy(ec2, ModifySnapshotAttributeCommand)).map((s) => [s.region, s.input])).toEqual(
      snapshotSet.snapshots.map((s) => [
        'eu-west-1',
        {
          SnapshotId: s.snapshotId,
          Attribute: 'createVolumePermission',
          OperationType: 'remove',
          UserIds: [drAccount],
        },
      ]),
    );
    expect(ec2.commandCalls(DeleteSnapshotCommand)).toHaveLength(0);
  });

  test('failed: the backup stays completed and says why; no copy is deleted, and no DR manifest written, from the source side', async () => {
    useTarget('cross-account');
    const dr = await copySnapshots(event());
    ec2
      .on(DescribeSnapshotsCommand, { Filters: [{ Name: 'tag:pgsnap:backup-id', Values: [backupId] }] })
      .resolves({
        Snapshots: dr.copies.map((c) => ({ SnapshotId: c.snapshotId })),
      });
    ec2.resetHistory();
    const error = { Error: 'CopyFailedError', Cause: 'DR copy snap-dr00000000000002 is in state error' };
    await recordCopies(event({ outcome: 'failed', dr, copyError: error }));
    // DR retention, in the DR account, deletes them: the source account has no delete rights there.
    expect(ec2.commandCalls(DeleteSnapshotCommand)).toHaveLength(0);
    const src = await sourceRepository();
    const drRepo = await openRepository(drUrl, 'orders-db');
    try {
      const sourceManifest = (await src.readManifest(backupId))!;
      expect(sourceManifest.state).toBe('completed');
      expect(sourceManifest.copies?.map((c) => c.state)).toEqual(['failed', 'failed']);
      expect(sourceManifest.copies?.[0]?.reason).toContain('CopyFailedError');
      expect(sourceManifest.copies?.map((c) => c.snapshotId)).toEqual(dr.copies.map((c) => c.snapshotId));
      expect(await drRepo.readManifest(backupId)).toBeUndefined();
    } finally {
      src.close();
      drRepo.close();
    }
    expect(kms.commandCalls(RevokeGrantCommand)).toHaveLength(1);
  });

  test('failed when the step that started the copies never returned: the copies found by their tags are named in the source manifest', async () => {
    useTarget('cross-account');
    const copies = snapshotSet.snapshots.map((s, i) => ({
      SnapshotId: `snap-dr-orphan${i}`,
      Tags: [
        { Key: 'pgsnap:cluster', Value: 'orders-db' },
        { Key: 'pgsnap:backup-id', Value: backupId },
        { Key: 'pgsnap:source-snapshot-id', Value: s.snapshotId },
      ],
    }));
    ec2
      .on(DescribeSnapshotsCommand, { Filters: [{ Name: 'tag:pgsnap:backup-id', Values: [backupId] }] })
      .resolves({ Snapshots: copies });
    await recordCopies(event({ outcome: 'failed', copyError: { Error: 'States.Timeout' } }));
    expect(ec2.commandCalls(DeleteSnapshotCommand)).toHaveLength(0);
    const src = await sourceRepository();
    const drRepo = await openRepository(drUrl, 'orders-db');
    try {
      expect(
        (await src.readManifest(backupId))!.copies?.map((c) => [c.sourceSnapshotId, c.snapshotId]),
      ).toEqual(snapshotSet.snapshots.map((s, i) => [s.snapshotId, `snap-dr-orphan${i}`]));
      expect(await drRepo.readManifest(backupId)).toBeUndefined();
    } finally {
      src.close();
      drRepo.close();
    }
  });

  test('completed with snapshotLock: each DR copy is locked in the DR account and region', async () => {
    process.env.PGSNAP_DR = JSON.stringify({
      ...target('cross-account'),
      snapshotLock: { mode: 'governance', days: 35 },
    });
    const dr = await copySnapshots(event());
    ec2.on(LockSnapshotCommand).resolves({});
    await recordCopies(event({ outcome: 'completed', dr }));
    const locks = await sentBy(ec2, LockSnapshotCommand);
    expect(locks.map((l) => [l.region, l.accessKeyId, l.input])).toEqual(
      dr.copies.map((c) => [
        'us-west-2',
        'ASIADRACCOUNT',
        { SnapshotId: c.snapshotId, LockMode: 'governance', LockDuration: 35 },
      ]),
    );
  });

  test('a lock the DR account refuses still takes back the sharing and the grant, before any manifest is rewritten', async () => {
    process.env.PGSNAP_DR = JSON.stringify({
      ...target('cross-account'),
      snapshotLock: { mode: 'compliance', days: 35 },
    });
    const dr = await copySnapshots(event());
    const before = await (async () => {
      const src = await sourceRepository();
      try {
        return await src.readManifest(backupId);
      } finally {
        src.close();
      }
    })();
    ec2.resetHistory();
    kms.resetHistory();
    ec2
      .on(LockSnapshotCommand)
      .rejects(Object.assign(new Error('not authorized'), { name: 'UnauthorizedOperation' }));
    await expect(recordCopies(event({ outcome: 'completed', dr }))).rejects.toMatchObject({
      name: 'UnauthorizedOperation',
    });
    expect(kms.commandCalls(RevokeGrantCommand)).toHaveLength(1);
    expect(
      ec2.commandCalls(ModifySnapshotAttributeCommand).map((c) => c.args[0].input.OperationType),
    ).toEqual(['remove', 'remove']);
    // The step is retried or fails; the manifests still say what they said before it.
    const src = await sourceRepository();
    try {
      expect(await src.readManifest(backupId)).toEqual(before);
    } finally {
      src.close();
    }
  });

  test('completed without snapshotLock locks nothing', async () => {
    useTarget('cross-account');
    const dr = await copySnapshots(event());
    await recordCopies(event({ outcome: 'completed', dr }));
    expect(ec2.commandCalls(LockSnapshotCommand)).toHaveLength(0);
  });

  test('failed before any copy started: the source manifest records the failure for each snapshot', async () => {
    useTarget('same-account');
    await recordCopies(event({ outcome: 'failed', copyError: { Error: 'States.Timeout' } }));
    const src = await sourceRepository();
    try {
      const manifest = (await src.readManifest(backupId))!;
      expect(manifest.state).toBe('completed');
      expect(manifest.copies).toEqual(
        snapshotSet.snapshots.map((s) =>
          expect.objectContaining({ sourceSnapshotId: s.snapshotId, state: 'failed', region: 'us-west-2' }),
        ),
      );
    } finally {
      src.close();
    }
    // Same account: nothing was shared, so nothing is taken back.
    expect(kms.commandCalls(RevokeGrantCommand)).toHaveLength(0);
    expect(ec2.commandCalls(ModifySnapshotAttributeCommand)).toHaveLength(0);
  });
});
