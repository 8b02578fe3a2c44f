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
      { role: 'pgdata', path: '/var/lib/postgresql/15/main' },
      { role: 'pg_wal', path: '/pgwal/15/main' },
      { role: 'tablespace', name: 'archive_ts', path: '/mnt/ts1/pg' },
    ]);
    expect(found.problems).toEqual([]);
    expect(found.volumes).toEqual([
      { volumeId: 'vol-0a1b2c3d4e5f60001', disk: 'nvme1n1', holds: ['pgdata'] },
      { volumeId: 'vol-0a1b2c3d4e5f60002', disk: 'nvme2n1', holds: ['pg_wal'] },
      { volumeId: 'vol-0a1b2c3d4e5f60003', disk: 'nvme3n1', holds: ['tablespace archive_ts'] },
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
      { role: 'pgdata', path: '/srv/pg/data' },
      { role: 'pg_wal', path: '/srv/pg/data/pg_wal' },
    ]);
    expect(found.problems).toEqual([]);
    expect(found.paths[0]).toMatchObject({ device: 'dm-0', source: '/dev/mapper/pgvg-data' });
    expect(found.volumes).toEqual([
      { volumeId: 'vol-0a1b2c3d4e5f60011', disk: 'nvme1n1', holds: ['pgdata', 'pg_wal'] },
      { volumeId: 'vol-0a1b2c3d4e5f60012', disk: 'nvme2n1', holds: ['pgdata', 'pg_wal'] },
    ]);
  });

  test('md RAID 0 over partitions of two EBS volumes resolves to both disks', () => {
    const found = fixture('nitro-md-raid0')([{ role: 'pgdata', path: '/data/pg' }]);
    expect(found.problems).toEqual([]);
    expect(found.volumes.map((v) => v.volumeId)).toEqual(['vol-0a1b2c3d4e5f60021', 'vol-0a1b2c3d4e5f60022']);
  });

  test('PGDATA on the root file system includes the root volume', () => {
    const found = fixture('nitro-separate-volumes')([{ role: 'pgdata', path: '/opt/pgdata' }]);
    expect(found.volumes).toEqual([
      { volumeId: 'vol-0a1b2c3d4e5f60000', disk: 'nvme0n1', holds: ['pgdata'] },
    ]);
  });

  test('on Xen the host cannot tell the volume id: it says so and what to do', () => {
    const found = fixture('xen')([{ role: 'pgdata', path: '/data/pg' }]);
    expect(found.volumes).toEqual([]);
    expect(found.paths[0]).toMatchObject({ device: 'xvdf', disks: [{ disk: 'xvdf' }] });
    expect(found.problems).toEqual([
      expect.stringMatching(
        /pgdata is on xvdf, which shows no EBS volume id .*list its volume id as volumeIds/,
      ),
    ]);
  });

  test('the instance store is refused: it cannot be snapshotted', () => {
    const found = fixture('instance-store')([{ role: 'pgdata', path: '/mnt/nvme/pg' }]);
    expect(found.volumes).toEqual([]);
    expect(found.problems).toEqual([expect.stringContaining('instance store disk')]);
  });

  test('a path on a file system without a block device (tmpfs, overlay) is a problem, named', () => {
    const found = fixture('nitro-separate-volumes')([{ role: 'pg_wal', path: '/run/pg_wal' }]);
    expect(found.problems).toEqual([
      expect.stringMatching(/pg_wal \(\/run\/pg_wal\) is on tmpfs .*not a block device/),
    ]);
  });
});
