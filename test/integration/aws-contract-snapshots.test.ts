/**
 * The snapshot handlers against moto_server's EC2 (and its S3 for the
 * repository): an instance with a boot volume and three attached data
 * volumes, made with RunInstances, CreateVolume and AttachVolume, then the
 * real create-snapshots, check-snapshots and delete-snapshots handlers.
 *
 * What moto 5.2.1 cannot show, kept in test/unit/snapshot-handlers.test.ts
 * and snapshot-set-idempotency.test.ts (aws-sdk-client-mock):
 * - ExcludeDataVolumeIds: moto snapshots every data volume whatever the list
 *   says, so here the cluster holds all of them;
 * - pending snapshots, and snapshots in error: moto's are completed at once;
 * - tags that are not visible yet (the reason for the manifest intent): moto
 *   shows them at once.
 */
import {
  AttachVolumeCommand,
  CreateVolumeCommand,
  DeleteSnapshotCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openRepository } from '#domain/repository/open';
import { checkSnapshotsHandler } from '../../functions/check-snapshots.ts';
import { createSnapshotsHandler } from '../../functions/create-snapshots.ts';
import { deleteSnapshotsHandler } from '../../functions/delete-snapshots.ts';
import { Moto, skipWithoutMoto } from '../support/moto.ts';
import { startedManifest } from '../support/started-manifest.ts';

const region = 'eu-west-1';
const zone = `${region}a`;
const cluster = 'orders-db';

describe.skipIf(skipWithoutMoto)('the snapshot handlers against moto EC2', () => {
  let moto: Moto;
  let ec2: EC2Client;
  let instanceId: string;
  const dataVolumes: string[] = [];
  let repositoryUrl: string;
  let counter = 0;
  const newBackupId = () => `20261121T1430${String(++counter).padStart(2, '0')}Z-a1b2c3`;

  beforeAll(async () => {
    moto = await Moto.start();
    ec2 = new EC2Client(moto.client(region));
    const run = await ec2.send(
      new RunInstancesCommand({
        ImageId: 'ami-12c6146b',
        MinCount: 1,
        MaxCount: 1,
        InstanceType: 'm6i.large',
        Placement: { AvailabilityZone: zone },
      }),
    );
    instanceId = run.Instances![0]!.InstanceId!;
    for (const device of ['/dev/sdf', '/dev/sdg', '/dev/sdh']) {
      const volume = await ec2.send(new CreateVolumeCommand({ AvailabilityZone: zone, Size: 8 }));
      await ec2.send(
        new AttachVolumeCommand({ VolumeId: volume.VolumeId, InstanceId: instanceId, Device: device }),
      );
      dataVolumes.push(volume.VolumeId!);
    }
    const s3 = new S3Client({ ...moto.client(region), forcePathStyle: true });
    await s3.send(
      new CreateBucketCommand({
        Bucket: 'pgsnap-repo',
        CreateBucketConfiguration: { LocationConstraint: region },
      }),
    );
    s3.destroy();
    repositoryUrl = `s3://pgsnap-repo/prod?endpoint=${encodeURIComponent(moto.endpoint)}&path-style=true&region=${region}`;
    Object.assign(process.env, moto.env, {
      PGSNAP_FIRST_POLL_SECONDS: '15',
      PGSNAP_MAX_POLL_SECONDS: '300',
      PGSNAP_SNAPSHOT_HOURS: '24',
    });
  });
  afterAll(async () => {
    ec2?.destroy();
    await moto?.stop();
  });

  async function started(backupId: string) {
    const repository = await openRepository(repositoryUrl, cluster);
    await repository.writeManifest(startedManifest(cluster, backupId));
    return repository;
  }

  const event = (backupId: string, extra: Record<string, unknown> = {}) => ({
    cluster,
    backupId,
    instanceId,
    volumeIds: dataVolumes,
    begin: {},
    ...extra,
  });

  test('snapshots the data volumes but not the boot volume, tagged, and records them in the manifest', async () => {
    const backupId = newBackupId();
    const repository = await started(backupId);
    const set = await createSnapshotsHandler(ec2)(event(backupId, { repository: repositoryUrl }));
    expect(set.snapshots.map((s) => s.volumeId).sort()).toEqual([...dataVolumes].sort());
    const tagged = await ec2.send(
      new DescribeSnapshotsCommand({
        OwnerIds: ['self'],
        Filters: [{ Name: 'tag:pgsnap:backup-id', Values: [backupId] }],
      }),
    );
    expect(tagged.Snapshots!.map((s) => s.SnapshotId).sort()).toEqual(
      set.snapshots.map((s) => s.snapshotId).sort(),
    );
    for (const snapshot of tagged.Snapshots!) {
      expect(snapshot.Tags).toEqual(expect.arrayContaining([{ Key: 'pgsnap:cluster', Value: cluster }]));
    }
    const manifest = (await repository.readManifest(backupId))!;
    expect(manifest.state).toBe('snapshotting');
    expect(manifest.snapshots.map((s) => s.snapshotId).sort()).toEqual(
      set.snapshots.map((s) => s.snapshotId).sort(),
    );

    // A retried step gets the same set; moto's snapshots are completed at once.
    const again = await createSnapshotsHandler(ec2)(event(backupId, { repository: repositoryUrl }));
    expect(again.snapshots).toEqual(set.snapshots);
    expect(await checkSnapshotsHandler(ec2)({ snapshotSet: set })).toMatchObject({
      completed: true,
      progress: '100%',
    });
    repository.close();
  });

  test('refuses a volume that is not attached to the instance, naming it', async () => {
    const loose = await ec2.send(new CreateVolumeCommand({ AvailabilityZone: zone, Size: 8 }));
    await expect(
      createSnapshotsHandler(ec2)(event(newBackupId(), { volumeIds: [dataVolumes[0], loose.VolumeId] })),
    ).rejects.toMatchObject({ name: 'PreconditionError', message: expect.stringContaining(loose.VolumeId!) });
  });

  test('a snapshot deleted behind the backup fails check-snapshots with SnapshotFailedError, not InvalidSnapshot.NotFound', async () => {
    const set = await createSnapshotsHandler(ec2)(event(newBackupId()));
    const gone = set.snapshots[1]!.snapshotId;
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: gone }));
    // moto, like EC2, fails DescribeSnapshots with SnapshotIds as a whole when one of them is gone.
    await expect(ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [gone] }))).rejects.toMatchObject({
      name: 'InvalidSnapshot.NotFound',
    });
    const taken = { ...set, createdAt: new Date(Date.now() - 10 * 60_000).toISOString() };
    await expect(checkSnapshotsHandler(ec2)({ snapshotSet: taken })).rejects.toMatchObject({
      name: 'SnapshotFailedError',
      message: expect.stringContaining(`${gone} no longer exists`),
    });
    // Within minutes of the snapshot, EC2's eventual consistency may hide it: pending, not failed.
    expect(await checkSnapshotsHandler(ec2)({ snapshotSet: set })).toMatchObject({ completed: false });
  });

  test('delete-snapshots deletes every snapshot tagged with the backup, and a second run finds none', async () => {
    const backupId = newBackupId();
    const set = await createSnapshotsHandler(ec2)(event(backupId));
    const { deleted } = await deleteSnapshotsHandler(ec2)({ backupId });
    expect(deleted.sort()).toEqual(set.snapshots.map((s) => s.snapshotId).sort());
    const left = await ec2.send(
      new DescribeSnapshotsCommand({ Filters: [{ Name: 'snapshot-id', Values: deleted }] }),
    );
    expect(left.Snapshots).toEqual([]);
    expect(await deleteSnapshotsHandler(ec2)({ backupId })).toEqual({ deleted: [] });
  });
});
