import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import {
  type ClusterPath,
  discoverVolumes,
  type FindmntOutput,
  recordedSysfs,
} from '../../agent/volumes/block-devices.ts';

function fixture(name: string) {
  const recording = JSON.parse(
    readFileSync(join(import.meta.dirname, '../fixtures/discover', `${name}.json`), 'utf8'),
  ) as { findmnt: FindmntOutput; sys: Record<string, string> };
  return (paths: ClusterPath[]) => discoverVolumes(paths, recording.findmnt, recordedSysfs(recording.sys));
}

describe('pgsnap discover: which EBS volumes hold the cluster', () => {
  test('PGDATA, pg_wal and a tablespace on a partition, each on its own NVMe EBS volume', () => {
    const found = fixture('nitro-separate-volumes')([
      { role: 'data', path: '/var/lib/postgresql/15/main' },
      { role: 'wal', path: '/pgwal/15/main' },
      { role: 'tablespace', oid: '16390', name: 'archive_ts', path: '/mnt/ts1/pg' },
    ]);
    expect(found.problems).toEqual([]);
    expect(found.volumes).toEqual([
      {
        volumeId: 'vol-0a1b2c3d4e5f60001',
        disk: 'nvme1n1',
        holds: ['pgdata'],
        mountPoint: '/var/lib/postgresql',
        fstype: 'xfs',
        fsUuid: '5f2c8d9e-1a2b-4c3d-8e9f-0a1b2c3d4e01',
        paths: [{ role: 'data', path: '/var/lib/postgresql/15/main' }],
      },
      {
        volumeId: 'vol-0a1b2c3d4e5f60002',
        disk: 'nvme2n1',
        holds: ['pg_wal'],
        mountPoint: '/pgwal',
        fstype: 'xfs',
        fsUuid: '5f2c8d9e-1a2b-4c3d-8e9f-0a1b2c3d4e02',
        paths: [{ role: 'wal', path: '/pgwal/15/main' }],
      },
      {
        volumeId: 'vol-0a1b2c3d4e5f60003',
        disk: 'nvme3n1',
        holds: ['tablespace archive_ts'],
        mountPoint: '/mnt/ts1',
        fstype: 'ext4',
        fsUuid: '5f2c8d9e-1a2b-4c3d-8e9f-0a1b2c3d4e03',
        // The file system is on the disk's first partition: a restore mounts nvmeXn1p1 of the new volume.
        partition: 1,
        paths: [{ role: 'tablespace', path: '/mnt/ts1/pg', tablespaceOid: '16390' }],
      },
    ]);
    expect(found.paths[2]).toMatchObject({
      mount: '/mnt/ts1',
      source: '/dev/nvme3n1p1',
      device: 'nvme3n1p1',
    });
    // The root volume holds none of it, so it is not part of the set.
    expect(found.volumes.map((v) => v.disk)).not.toContain('nvme0n1');
  });

  test('an LVM volume striped over two EBS volumes needs both, and pg_wal inside PGDATA adds none', () => {
    const found = fixture('nitro-lvm-striped')([
      { role: 'data', path: '/srv/pg/data' },
      { role: 'wal', path: '/srv/pg/data/pg_wal' },
    ]);
    expect(found.problems).toEqual([]);
    expect(found.paths[0]).toMatchObject({ device: 'dm-0', source: '/dev/mapper/pgvg-data' });
    expect(found.volumes).toMatchObject([
      { volumeId: 'vol-0a1b2c3d4e5f60011', disk: 'nvme1n1', holds: ['pgdata', 'pg_wal'] },
      { volumeId: 'vol-0a1b2c3d4e5f60012', disk: 'nvme2n1', holds: ['pgdata', 'pg_wal'] },
    ]);
    // Both members of the striped volume carry the same mount point, and no partition: the file system spans them.
    expect(found.volumes.map((v) => [v.mountPoint, v.partition])).toEqual([
      ['/srv/pg', undefined],
      ['/srv/pg', undefined],
    ]);
  });

  test('md RAID 0 over partitions of two EBS volumes resolves to both disks', () => {
    const found = fixture('nitro-md-raid0')([{ role: 'data', path: '/data/pg' }]);
    expect(found.problems).toEqual([]);
    expect(found.volumes.map((v) => v.volumeId)).toEqual(['vol-0a1b2c3d4e5f60021', 'vol-0a1b2c3d4e5f60022']);
  });

  test('PGDATA on the root file system includes the root volume', () => {
    const found = fixture('nitro-separate-volumes')([{ role: 'data', path: '/opt/pgdata' }]);
    expect(found.volumes).toMatchObject([
      {
        volumeId: 'vol-0a1b2c3d4e5f60000',
        disk: 'nvme0n1',
        holds: ['pgdata'],
        mountPoint: '/',
        partition: 1,
      },
    ]);
  });

  test('on Xen the host cannot tell the volume id: it says so and what to do', () => {
    const found = fixture('xen')([{ role: 'data', path: '/data/pg' }]);
    expect(found.volumes).toEqual([]);
    expect(found.paths[0]).toMatchObject({ device: 'xvdf', disks: [{ disk: 'xvdf' }] });
    expect(found.problems).toEqual([
      expect.stringMatching(
        /pgdata is on xvdf, which shows no EBS volume id .*list its volume id as volumeIds/,
      ),
    ]);
  });

  test('the instance store is refused: it cannot be snapshotted', () => {
    const found = fixture('instance-store')([{ role: 'data', path: '/mnt/nvme/pg' }]);
    expect(found.volumes).toEqual([]);
    expect(found.problems).toEqual([expect.stringContaining('instance store disk')]);
  });

  test('a path under a local volume (PGSNAP_LOCAL_VOLUMES) is held by it, mounted at its path', () => {
    const recording = JSON.parse(
      readFileSync(join(import.meta.dirname, '../fixtures/discover/nitro-separate-volumes.json'), 'utf8'),
    ) as { findmnt: FindmntOutput; sys: Record<string, string> };
    recording.findmnt.filesystems.push({
      target: '/tmp/harness/vol-wal',
      source: '/dev/loop7',
      fstype: 'btrfs',
      'maj:min': '0:51',
      uuid: '0c0e1f2a-3b4c-4d5e-8f60-718293a4b5c6',
    });
    const found = discoverVolumes(
      [
        { role: 'data', path: '/tmp/harness/vol-data/pgdata' },
        { role: 'wal', path: '/tmp/harness/vol-wal/pgwal' },
      ],
      recording.findmnt,
      recordedSysfs(recording.sys),
      [
        { volumeId: 'vol-00000000000000001', path: '/tmp/harness/vol-data' },
        { volumeId: 'vol-00000000000000002', path: '/tmp/harness/vol-wal', device: '/dev/loop7' },
      ],
    );
    expect(found.problems).toEqual([]);
    expect(found.volumes).toEqual([
      {
        volumeId: 'vol-00000000000000001',
        disk: 'dir',
        holds: ['pgdata'],
        mountPoint: '/tmp/harness/vol-data',
        fstype: 'dir',
        paths: [{ role: 'data', path: '/tmp/harness/vol-data/pgdata' }],
      },
      {
        volumeId: 'vol-00000000000000002',
        disk: 'loop7',
        holds: ['pg_wal'],
        mountPoint: '/tmp/harness/vol-wal',
        fstype: 'btrfs',
        fsUuid: '0c0e1f2a-3b4c-4d5e-8f60-718293a4b5c6',
        paths: [{ role: 'wal', path: '/tmp/harness/vol-wal/pgwal' }],
      },
    ]);
  });

  test('a path on a file system without a block device (tmpfs, overlay) is a problem, named', () => {
    const found = fixture('nitro-separate-volumes')([{ role: 'wal', path: '/run/pg_wal' }]);
    expect(found.problems).toEqual([
      expect.stringMatching(/pg_wal \(\/run\/pg_wal\) is on tmpfs .*not a block device/),
    ]);
  });

  test('btrfs on a loop device is found by its source (btrfs reports no block device number) and named a loop device', () => {
    const findmnt: FindmntOutput = {
      filesystems: [
        { target: '/', source: '/dev/nvme0n1p1', fstype: 'ext4', 'maj:min': '259:1' },
        { target: '/srv/pg', source: '/dev/loop3[/data]', fstype: 'btrfs', 'maj:min': '0:48', uuid: 'b1' },
      ],
    };
    const sys = recordedSysfs({
      'class/block/nvme0n1p1/dev': '259:1',
      'class/block/loop3/dev': '7:3',
      'block/loop3/dev': '7:3',
    });
    const found = discoverVolumes([{ role: 'data', path: '/srv/pg/15/main' }], findmnt, sys);
    expect(found.paths[0]).toMatchObject({ mount: '/srv/pg', device: 'loop3', fstype: 'btrfs' });
    expect(found.problems).toEqual([
      'pgdata is on loop3, a loop device (a file on another file system), not an EBS volume: EBS cannot ' +
        'snapshot it; on one machine, take snapshots with a local provider instead',
    ]);
    expect(found.problems.join('')).not.toMatch(/not a block device/);
  });
});
