/**
 * The restore's EC2 steps against moto_server's EC2 (and its S3 for the
 * repository), handler after handler as the restore state machine calls
 * them: a backup's snapshot recorded with its volume's size, type and
 * performance; a drill instance launched from a launch template; a volume
 * made from the snapshot as the source was, tagged with the restore; attached,
 * detached and deleted by its tag; the launched instance terminated; and the
 * source host refused as a target.
 *
 * What moto 5.2.1 does not show, kept in test/e2e/restore-state-machine.test.ts
 * with the local EC2: volumes that stay `creating` (moto's are available at
 * once), attachments that fail, and VolumeInitializationRate (moto ignores it).
 */
import {
  AttachVolumeCommand,
  CreateLaunchTemplateCommand,
  CreateVolumeCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  EC2Client,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openRepository } from '#domain/repository/open';
import type { Repository } from '#domain/repository/repository';
import { attachRestoreVolumesHandler } from '../../functions/attach-restore-volumes.ts';
import { checkRestoreInstanceHandler } from '../../functions/check-restore-instance.ts';
import { checkRestoreVolumesHandler } from '../../functions/check-restore-volumes.ts';
import { createRestoreVolumesHandler } from '../../functions/create-restore-volumes.ts';
import { createSnapshotsHandler } from '../../functions/create-snapshots.ts';
import { findRestoreInstanceHandler } from '../../functions/find-restore-instance.ts';
import { handler as prepareRestore } from '../../functions/prepare-restore.ts';
import { releaseRestoreVolumesHandler } from '../../functions/release-restore-volumes.ts';
import { terminateRestoreInstanceHandler } from '../../functions/terminate-restore-instance.ts';
import { setLocalCatalog } from '../../local/state-machine.ts';
import { Moto, skipWithoutMoto } from '../support/moto.ts';
import { startedManifest } from '../support/started-manifest.ts';

const region = 'eu-west-1';
const zone = `${region}a`;
const cluster = 'orders-db';
const backupId = '20261121T143000Z-a1b2c3';

describe.skipIf(skipWithoutMoto)('the restore EC2 steps against moto EC2', () => {
  let moto: Moto;
  let ec2: EC2Client;
  let sourceInstance: string;
  let sourceVolume: string;
  let repositoryUrl: string;
  let repository: Repository;

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
    sourceInstance = run.Instances![0]!.InstanceId!;
    const volume = await ec2.send(
      new CreateVolumeCommand({
        AvailabilityZone: zone,
        Size: 20,
        VolumeType: 'gp3',
        Iops: 4000,
        Throughput: 250,
      }),
    );
    sourceVolume = volume.VolumeId!;
    await ec2.send(
      new AttachVolumeCommand({ VolumeId: sourceVolume, InstanceId: sourceInstance, Device: '/dev/sdf' }),
    );
    const s3 = new S3Client({ ...moto.client(region), forcePathStyle: true });
    await s3.send(
      new CreateBucketCommand({
        Bucket: 'pgsnap-repo',
        CreateBucketConfiguration: { LocationConstraint: region },
      }),
    );
    s3.destroy();
    repositoryUrl = `s3://pgsnap-repo/prod?endpoint=${encodeURIComponent(moto.endpoint)}&path-style=true&region=${region}`;
    Object.assign(process.env, moto.env);
    setLocalCatalog({
      clusters: [{ name: cluster, repository: repositoryUrl, fastCheckpoint: false, maxBackupMinutes: 60 }],
    });

    repository = await openRepository(repositoryUrl, cluster);
    await repository.writeManifest(startedManifest(cluster, backupId));
    const label = await repository.putArtifact(
      backupId,
      'backup_label',
      Buffer.from('START WAL LOCATION: 0/2000028\n'),
    );
    await createSnapshotsHandler(ec2)({
      cluster,
      backupId,
      instanceId: sourceInstance,
      volumeIds: [sourceVolume],
      repository: repositoryUrl,
      begin: {
        volumes: [
          {
            volumeId: sourceVolume,
            mountPoint: '/var/lib/postgresql',
            fstype: 'xfs',
            fsUuid: '5c3e0a3b-1c1f-4f7e-9d40-2b0e8a1c6f11',
            paths: [{ role: 'data', path: '/var/lib/postgresql/15/main' }],
          },
        ],
      },
    });
    const manifest = (await repository.readManifest(backupId))!;
    await repository.writeManifest({
      ...manifest,
      state: 'completed',
      stopLsn: '0/3000100',
      stopWalFile: '000000010000000000000003',
      artifacts: [label],
      timings: { ...manifest.timings, stoppedAt: new Date().toISOString() },
    });
    for (const name of ['000000010000000000000002', '000000010000000000000003']) {
      await repository.store.put(`${cluster}/wal/${name}.zst`, Buffer.from('a segment'));
    }
  });
  afterAll(async () => {
    repository?.close();
    ec2?.destroy();
    await moto?.stop();
  });

  test('the manifest keeps what a restore needs of the source volume, from DescribeVolumes and the host', async () => {
    const [snapshot] = (await repository.readManifest(backupId))!.snapshots;
    expect(snapshot!.volume).toMatchObject({
      holds: [{ role: 'data', path: '/var/lib/postgresql/15/main' }],
      mountPoint: '/var/lib/postgresql',
      fstype: 'xfs',
      deviceName: '/dev/sdf',
      sizeGiB: 20,
      volumeType: 'gp3',
      iops: 4000,
      throughput: 250,
      encrypted: false,
      availabilityZone: zone,
    });
  });

  test('a drill: launch from the template, a volume as the source was, attach, then detach, delete and terminate by tag', async () => {
    await ec2.send(
      new CreateLaunchTemplateCommand({
        LaunchTemplateName: 'pgsnap-drill',
        LaunchTemplateData: { ImageId: 'ami-12c6146b', InstanceType: 'm6i.large' },
      }),
    );
    const subnet = (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [sourceInstance] })))
      .Reservations![0]!.Instances![0]!.SubnetId!;
    const plan = await prepareRestore({
      input: {
        cluster,
        mode: 'drill',
        instance: { launch: { launchTemplate: 'pgsnap-drill', subnetId: subnet } },
      },
      executionName: 'r-20261121T150000Z-d0d0d0',
      executionStartTime: new Date().toISOString(),
    });
    expect(plan).toMatchObject({ restoreId: 'r-20261121T150000Z-d0d0d0', backupId, mode: 'drill' });
    const state = { restoreId: plan.restoreId, cluster, repository: repositoryUrl };
    const target = await findRestoreInstanceHandler(ec2)({ ...state, backupId, instance: plan.instance });
    expect(target.launched).toBe(true);
    expect(target.instanceId).not.toBe(sourceInstance);
    expect(
      await checkRestoreInstanceHandler(ec2)({ instanceId: target.instanceId, since: target.at }),
    ).toMatchObject({
      running: true,
    });

    const created = await createRestoreVolumesHandler(ec2)({
      ...state,
      availabilityZone: target.availabilityZone,
      options: { initializationRate: 200 },
    });
    expect(created.volumeIds).toHaveLength(1);
    // A retried step (the same ClientToken) makes no second volume.
    const again = await createRestoreVolumesHandler(ec2)({
      ...state,
      availabilityZone: target.availabilityZone,
      options: {},
    });
    expect(again.volumeIds).toEqual(created.volumeIds);
    const [made] = (await ec2.send(new DescribeVolumesCommand({ VolumeIds: created.volumeIds }))).Volumes!;
    expect(made).toMatchObject({
      Size: 20,
      VolumeType: 'gp3',
      Iops: 4000,
      AvailabilityZone: target.availabilityZone,
    });
    expect(made!.Tags).toEqual(expect.arrayContaining([{ Key: 'pgsnap:restore-id', Value: plan.restoreId }]));
    expect(made!.SnapshotId).toBe((await repository.readManifest(backupId))!.snapshots[0]!.snapshotId);

    expect(
      await checkRestoreVolumesHandler(ec2)({ ...state, wanted: 'available', since: created.at }),
    ).toMatchObject({ ready: true });
    const attached = await attachRestoreVolumesHandler(ec2)({ ...state, instanceId: target.instanceId });
    expect(Object.values(attached.devices)).toEqual(['/dev/sdf']);
    expect(
      await checkRestoreVolumesHandler(ec2)({
        ...state,
        wanted: 'attached',
        instanceId: target.instanceId,
        since: attached.at,
      }),
    ).toMatchObject({ ready: true });
    const record = (await repository.readRestoreRecord(plan.restoreId))!;
    expect(record.state).toBe('attached');
    expect(record.volumes[0]).toMatchObject({ volumeId: created.volumeIds[0], device: '/dev/sdf' });

    let release = { passes: 0, deleted: [] as string[], remaining: 1 };
    while (release.remaining > 0 && release.passes < 5) {
      release = await releaseRestoreVolumesHandler(ec2)({ restoreId: plan.restoreId, force: false, release });
    }
    expect(release.deleted).toEqual(created.volumeIds);
    const left = await ec2.send(
      new DescribeVolumesCommand({ Filters: [{ Name: 'tag:pgsnap:restore-id', Values: [plan.restoreId] }] }),
    );
    expect(left.Volumes).toEqual([]);
    // The source volume is untouched.
    const source = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [sourceVolume] }));
    expect(source.Volumes![0]!.State).toBe('in-use');

    const { terminated } = await terminateRestoreInstanceHandler(ec2)({ restoreId: plan.restoreId });
    expect(terminated).toEqual([target.instanceId]);
    const instances = await ec2.send(
      new DescribeInstancesCommand({ InstanceIds: [target.instanceId, sourceInstance] }),
    );
    const states = Object.fromEntries(
      instances.Reservations!.flatMap((r) => r.Instances!).map((i) => [i.InstanceId, i.State!.Name]),
    );
    expect(states).toEqual({
      [target.instanceId]: expect.stringMatching(/shutting-down|terminated/),
      [sourceInstance]: 'running',
    });
  });

  test('the source host is refused as the target of a restore', async () => {
    const plan = await prepareRestore({
      input: { cluster, instance: { instanceId: sourceInstance } },
      executionName: 'r-20261121T160000Z-d0d0d1',
      executionStartTime: new Date().toISOString(),
    });
    await expect(
      findRestoreInstanceHandler(ec2)({
        restoreId: plan.restoreId,
        cluster,
        repository: repositoryUrl,
        backupId,
        instance: plan.instance,
      }),
    ).rejects.toMatchObject({
      name: 'PreconditionError',
      message: expect.stringContaining(`${sourceInstance} is the host of ${cluster}`),
    });
  });
});
