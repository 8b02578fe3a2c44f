/**
 * DR copies against moto_server: EC2 in two regions, KMS and STS. The source
 * snapshots are taken by CreateSnapshots of a moto instance; the DR session
 * is opened by the real openDrSession, which assumes the DR role with its
 * external id (moto's assumed-role credentials act as the role's account).
 *
 * What moto 5.2.1 cannot show, kept in test/unit/dr-copies.test.ts:
 * - CopySnapshot across accounts: moto looks the source up in the copying
 *   account and answers InvalidSnapshot.NotFound, so here the cross-account
 *   case stops after the sharing and the grant;
 * - LockSnapshot and DescribeLockedSnapshots (not implemented);
 * - pending copies (moto's are completed at once);
 * - CreateGrant's idempotence by name (moto makes a second grant).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AttachVolumeCommand,
  CopySnapshotCommand,
  CreateSnapshotsCommand,
  CreateVolumeCommand,
  DescribeSnapshotAttributeCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import { CreateKeyCommand, KMSClient, ListGrantsCommand } from '@aws-sdk/client-kms';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { checkDrCopies, copyBackupToDrRepository, startDrCopies } from '#domain/ebs/dr-copies';
import { grantOperations } from '#domain/ebs/dr-sharing';
import type { DrTarget } from '#domain/ebs/dr-target';
import { openDrSession } from '#domain/ebs/dr-target';
import { finishDrCopies } from '#domain/ebs/finish-dr-copies';
import { recordDrBackup } from '#domain/ebs/record-dr-backup';
import { applyEbsRetention } from '#domain/ebs/retention';
import type { SnapshotOfSet } from '#domain/ebs/snapshots';
import { openRepository } from '#domain/repository/open';
import { testManifest } from '../support/manifests.ts';
import { Moto, motoAccount, skipWithoutMoto } from '../support/moto.ts';

const sourceRegion = 'us-east-1';
const drRegion = 'us-west-2';
const drAccount = '111111111111';
const cluster = 'orders-db';
const settings = { firstPollSeconds: 15, maxPollSeconds: 300, snapshotHours: 24 };

describe.skipIf(skipWithoutMoto)('DR copies against moto EC2, KMS and STS', () => {
  let moto: Moto;
  let source: { ec2: EC2Client; kms: KMSClient };
  let sts: STSClient;
  let instanceId: string;
  let keyArn: string;
  let counter = 0;
  const newBackupId = () => `20261121T1500${String(++counter).padStart(2, '0')}Z-d4e5f6`;

  const sameAccount = (): DrTarget => ({
    sourceAccount: motoAccount,
    sourceRegion,
    account: motoAccount,
    region: drRegion,
    kmsKeyArn: `arn:aws:kms:${drRegion}:${motoAccount}:alias/pgsnap-dr`,
    clusters: {},
  });
  const crossAccount = (): DrTarget => ({
    ...sameAccount(),
    account: drAccount,
    kmsKeyArn: `arn:aws:kms:${drRegion}:${drAccount}:alias/pgsnap-dr`,
    roleArn: `arn:aws:iam::${drAccount}:role/pgsnap-dr-copy`,
    externalId: 'pgsnap-prod-7f3a',
  });

  beforeAll(async () => {
    moto = await Moto.start();
    // openDrSession makes its own clients (no endpoint option): the SDK takes AWS_ENDPOINT_URL.
    Object.assign(process.env, moto.env);
    source = { ec2: new EC2Client(moto.client(sourceRegion)), kms: new KMSClient(moto.client(sourceRegion)) };
    sts = new STSClient(moto.client(sourceRegion));
    keyArn = (await source.kms.send(new CreateKeyCommand({ Description: 'cluster volumes' }))).KeyMetadata!
      .Arn!;
    const run = await source.ec2.send(
      new RunInstancesCommand({
        ImageId: 'ami-12c6146b',
        MinCount: 1,
        MaxCount: 1,
        Placement: { AvailabilityZone: `${sourceRegion}a` },
      }),
    );
    instanceId = run.Instances![0]!.InstanceId!;
    for (const device of ['/dev/sdf', '/dev/sdg']) {
      const volume = await source.ec2.send(
        new CreateVolumeCommand({
          AvailabilityZone: `${sourceRegion}a`,
          Size: 8,
          Encrypted: true,
          KmsKeyId: keyArn,
        }),
      );
      await source.ec2.send(
        new AttachVolumeCommand({ VolumeId: volume.VolumeId, InstanceId: instanceId, Device: device }),
      );
    }
  });
  afterAll(async () => {
    source?.ec2.destroy();
    source?.kms.destroy();
    sts?.destroy();
    await moto?.stop();
  });

  /** The backup's snapshot set, as CreateSnapshots of the instance takes it. */
  async function snapshotSet(): Promise<SnapshotOfSet[]> {
    const taken = await source.ec2.send(
      new CreateSnapshotsCommand({
        InstanceSpecification: { InstanceId: instanceId, ExcludeBootVolume: true },
      }),
    );
    return taken.Snapshots!.map((s) => ({
      snapshotId: s.SnapshotId!,
      volumeId: s.VolumeId!,
      state: 'completed',
    }));
  }

  test('same account: copies every snapshot into the DR region with the DR key, once, and follows them', async () => {
    const backupId = newBackupId();
    const snapshots = await snapshotSet();
    const target = sameAccount();
    const drEc2 = new EC2Client(moto.client(drRegion));
    const copySet = await startDrCopies({ source, drEc2 }, { target, cluster, backupId, snapshots });
    expect(copySet.copies.map((c) => c.sourceSnapshotId)).toEqual(snapshots.map((s) => s.snapshotId));
    expect(copySet).toMatchObject({ account: motoAccount, region: drRegion });
    // A retried step finds the copies by their tags and starts none again.
    const again = await startDrCopies({ source, drEc2 }, { target, cluster, backupId, snapshots });
    expect(again.copies.map((c) => c.snapshotId)).toEqual(copySet.copies.map((c) => c.snapshotId));
    const progress = await checkDrCopies(drEc2, { copySet, attempt: 0, settings });
    expect(progress).toMatchObject({ completed: true, progress: '100%' });
    expect(progress.copies.map((c) => c.state)).toEqual(snapshots.map(() => 'completed'));
    drEc2.destroy();
  });

  test('same account: the DR stack records each copied backup from the copies EC2 shows; DR retention in the DR region deletes the older one’s copies', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgsnap-dr-retention-'));
    const drEc2 = new EC2Client(moto.client(drRegion));
    for (const side of ['source', 'dr']) mkdirSync(join(dir, side));
    const src = await openRepository(`file://${dir}/source`, cluster);
    const dr = await openRepository(`file://${dir}/dr`, cluster);
    const identity = { systemIdentifier: '7311111111111111111', walSegmentSize: 16 * 1024 * 1024 };
    try {
      await src.pin(identity, 'moto');
      const target = sameAccount();
      /** One backup copied to DR, and recorded there by the DR stack's recorder (moto completes copies at once). */
      const copied = async (backupId: string) => {
        const snapshots = await snapshotSet();
        const at = `${backupId.slice(0, 4)}-${backupId.slice(4, 6)}-${backupId.slice(6, 8)}T15:00:00.000Z`;
        const manifest = testManifest({ backupId });
        // Its backup_label, as every completed backup has: retention reads the start from it.
        const label = await src.putArtifact(
          backupId,
          'backup_label',
          Buffer.from(
            `START WAL LOCATION: ${manifest.startLsn} (file ${manifest.startWalFile})\nCHECKPOINT LOCATION: 0/2000060\n`,
          ),
        );
        await src.writeManifest(
          testManifest({
            backupId,
            state: 'completed',
            ...identity,
            artifacts: [label],
            snapshots: snapshots.map((s) => ({ provider: 'ebs', ...s })),
            timings: { startedAt: at, completedAt: at },
          }),
        );
        const copySet = await startDrCopies({ source, drEc2 }, { target, cluster, backupId, snapshots });
        await copyBackupToDrRepository(src, dr, { backupId, copySet });
        await finishDrCopies(
          { source, drEc2 },
          { source: src },
          { target, backupId, snapshots, copySet, outcome: 'completed' },
        );
        // The source wrote no DR manifest: the recorder writes it from the copies moto shows.
        expect(await dr.readManifest(backupId)).toBeUndefined();
        expect(
          await recordDrBackup(drEc2, dr, { backupId, account: target.account, region: drRegion }),
        ).toMatchObject({ recorded: true, state: 'completed' });
        return copySet.copies.map((c) => c.snapshotId!);
      };
      const inDr = async () =>
        (
          await drEc2.send(
            new DescribeSnapshotsCommand({
              OwnerIds: ['self'],
              Filters: [{ Name: 'tag:pgsnap:cluster', Values: [cluster] }],
            }),
          )
        ).Snapshots!.map((s) => s.SnapshotId!);

      // A minute before the next: backupIds sort by their start, to the second.
      const olderId = `20261121T1459${String(++counter).padStart(2, '0')}Z-d4e5f6`;
      const olderCopies = await copied(olderId);
      expect(await inDr()).toEqual(expect.arrayContaining(olderCopies));
      expect(await dr.readManifest(olderId)).toMatchObject({
        state: 'completed',
        snapshots: olderCopies.map((snapshotId) => expect.objectContaining({ snapshotId })),
      });
      const newerId = newBackupId();
      const newerCopies = await copied(newerId);

      const summary = await applyEbsRetention(dr, drEc2, { keepLast: 1 });
      expect(summary).toMatchObject({ removed: [olderId], unverified: [] });
      expect(summary.kept).toContain(newerId);
      const left = await inDr();
      for (const id of olderCopies) expect(left).not.toContain(id);
      expect(left).toEqual(expect.arrayContaining(newerCopies));
      expect(await dr.readManifest(olderId)).toBeUndefined();
    } finally {
      src.close();
      dr.close();
      drEc2.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the DR session assumes the DR role with its external id and acts as the DR account', async () => {
    const session = await openDrSession(sts, crossAccount(), { sessionName: 'pgsnap-copy-20261121T150000Z' });
    try {
      const credentials = await session.ec2.config.credentials();
      const who = await new STSClient(moto.client(drRegion, credentials)).send(
        new GetCallerIdentityCommand({}),
      );
      expect(who).toMatchObject({
        Account: drAccount,
        Arn: `arn:aws:sts::${drAccount}:assumed-role/pgsnap-dr-copy/pgsnap-copy-20261121T150000Z`,
      });
    } finally {
      session.close();
    }
  });

  test('another account: shares each snapshot and grants the DR role the source key before copying', async () => {
    const backupId = newBackupId();
    // moto records no KmsKeyId on what CreateSnapshots takes; a copy with the key has one, as EC2's always do.
    const [first] = await snapshotSet();
    const keyed = await source.ec2.send(
      new CopySnapshotCommand({
        SourceRegion: sourceRegion,
        SourceSnapshotId: first!.snapshotId,
        Encrypted: true,
        KmsKeyId: keyArn,
      }),
    );
    const snapshots = [{ ...first!, snapshotId: keyed.SnapshotId! }];
    const target = crossAccount();
    const session = await openDrSession(sts, target, { sessionName: `pgsnap-copy-${backupId}` });
    try {
      // moto cannot copy a snapshot shared from another account (InvalidSnapshot.NotFound); EC2 can.
      await expect(
        startDrCopies({ source, drEc2: session.ec2 }, { target, cluster, backupId, snapshots }),
      ).rejects.toMatchObject({ name: 'InvalidSnapshot.NotFound' });
    } finally {
      session.close();
    }
    const shared = await source.ec2.send(
      new DescribeSnapshotAttributeCommand({
        SnapshotId: keyed.SnapshotId,
        Attribute: 'createVolumePermission',
      }),
    );
    expect(shared.CreateVolumePermissions).toEqual([{ UserId: drAccount }]);
    const grants = await source.kms.send(
      new ListGrantsCommand({ KeyId: keyArn, GranteePrincipal: target.roleArn }),
    );
    expect(grants.Grants).toEqual([
      expect.objectContaining({ Name: `pgsnap-dr-${backupId}`, Operations: grantOperations }),
    ]);
  });

  test('another account: an encrypted snapshot whose key EC2 does not report is refused before anything is shared', async () => {
    const backupId = newBackupId();
    // What CreateSnapshots takes in moto: Encrypted, no KmsKeyId. Without the key there is no grant to give.
    const snapshots = await snapshotSet();
    const target = crossAccount();
    const session = await openDrSession(sts, target, { sessionName: `pgsnap-copy-${backupId}` });
    try {
      await expect(
        startDrCopies({ source, drEc2: session.ec2 }, { target, cluster, backupId, snapshots }),
      ).rejects.toMatchObject({
        name: 'CopyFailedError',
        message: expect.stringMatching(/is encrypted, but EC2 reports no KMS key.*customer managed key/),
      });
    } finally {
      session.close();
    }
    for (const snapshot of snapshots) {
      const shared = await source.ec2.send(
        new DescribeSnapshotAttributeCommand({
          SnapshotId: snapshot.snapshotId,
          Attribute: 'createVolumePermission',
        }),
      );
      expect(shared.CreateVolumePermissions ?? []).toEqual([]);
    }
  });
});
