/**
 * What pgsnap mount refuses before it touches the host: a file system that
 * spans several volumes (LVM, md), a disk that device-mapper took when it
 * was attached, and a volume that is not attached, each saying what to do.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { type RestoreRecord, validateRestoreRecord } from '#domain/repository/restore-record';
import { type Host, mountVolumes } from '../../agent/restore/mount-volumes.ts';
import { refuseLinksOnTheWay } from '../../agent/restore/restore-paths.ts';
import { recordedSysfs } from '../../agent/volumes/block-devices.ts';

const source = (mountPoint: string) => ({
  holds: [{ role: 'data' as const, path: `${mountPoint}/main` }],
  mountPoint,
  fstype: 'xfs',
  sizeGiB: 10,
  volumeType: 'gp3',
  encrypted: true,
  availabilityZone: 'eu-west-1a',
});

function record(volumes: Array<{ volumeId?: string; mountPoint: string }>): RestoreRecord {
  return {
    schemaVersion: 1,
    restoreId: 'r-20261121T143000Z-0a1b2c',
    cluster: 'orders-db',
    backupId: '20261121T120000Z-0a1b2c',
    mode: 'drill',
    state: 'attached',
    checks: { amcheck: 'all' },
    repository: 's3://bucket/pg',
    mountRoot: '/restore',
    volumes: volumes.map((v, i) => ({
      snapshotId: `snap-0000000000000000${i}`,
      ...(v.volumeId ? { volumeId: v.volumeId } : {}),
      source: source(v.mountPoint),
    })),
    timings: { requestedAt: '2026-11-21T14:30:00.000Z' },
    updatedAt: '2026-11-21T14:30:00.000Z',
  };
}

const host = (files: Record<string, string>): Host => ({
  sys: recordedSysfs(files),
  mounts: () => ({ filesystems: [] }),
  local: [],
  isRoot: true,
});

describe('pgsnap mount refuses', () => {
  test('a file system over two volumes (LVM, md), naming both and what to do', () => {
    const striped = record([
      { volumeId: 'vol-0a1b2c3d4e5f60011', mountPoint: '/srv/pg' },
      { volumeId: 'vol-0a1b2c3d4e5f60012', mountPoint: '/srv/pg' },
    ]);
    expect(() => mountVolumes(striped, host({}))).toThrow(
      expect.objectContaining({
        name: 'UnsupportedVolumeLayoutError',
        message: expect.stringMatching(
          /file system at \/srv\/pg spans 2 volumes \(vol-0a1b2c3d4e5f60011, vol-0a1b2c3d4e5f60012\).*vgchange -ay/,
        ),
      }),
    );
  });

  test('a disk that device-mapper holds since it was attached', () => {
    const lvm = host({
      'block/nvme1n1/device/serial': 'vol0a1b2c3d4e5f60011\n',
      'class/block/nvme1n1/holders/dm-0': '',
    });
    expect(() =>
      mountVolumes(record([{ volumeId: 'vol-0a1b2c3d4e5f60011', mountPoint: '/srv/pg' }]), lvm),
    ).toThrow(
      expect.objectContaining({
        name: 'UnsupportedVolumeLayoutError',
        message: expect.stringContaining('dm-0'),
      }),
    );
  });

  test('a volume this host does not show, with the serial it looked for and how to attach it', () => {
    expect(() =>
      mountVolumes(record([{ volumeId: 'vol-0a1b2c3d4e5f60099', mountPoint: '/srv/pg' }]), host({})),
    ).toThrow(
      expect.objectContaining({
        name: 'VolumeNotFoundError',
        message: expect.stringMatching(
          /vol-0a1b2c3d4e5f60099 is not attached to this host: no NVMe disk has serial vol0a1b2c3d4e5f60099.*attach-volume/,
        ),
      }),
    );
  });

  test('a volume the state machine has not created yet', () => {
    expect(() => mountVolumes(record([{ mountPoint: '/srv/pg' }]), host({}))).toThrow(
      expect.objectContaining({
        name: 'VolumeNotFoundError',
        message: expect.stringContaining('no volume id'),
      }),
    );
  });

  test('a recorded mount point that climbs out of the mountRoot with ..', () => {
    expect(() =>
      validateRestoreRecord(
        record([{ volumeId: 'vol-0a1b2c3d4e5f60001', mountPoint: '/../etc' }]),
        'the record',
      ),
    ).toThrow(
      /volumes\.0\.source\.mountPoint: an absolute path of plain names .*without \. or \.\. segments/,
    );
    // A newline hides the `..` from a regex whose `.` stops at it; a control character is no plain name either.
    for (const mountPoint of ['/srv\n/../../etc', '/srv/\t', '/srv/a b']) {
      expect(() =>
        validateRestoreRecord(record([{ volumeId: 'vol-0a1b2c3d4e5f60001', mountPoint }]), 'the record'),
      ).toThrow(/mountPoint/);
    }
    expect(() =>
      validateRestoreRecord(
        record([{ volumeId: 'vol-0a1b2c3d4e5f60001', mountPoint: '/srv/./pg' }]),
        'the record',
      ),
    ).toThrow(/mountPoint/);
    expect(
      validateRestoreRecord(record([{ volumeId: 'vol-0a1b2c3d4e5f60001', mountPoint: '/srv/.pg' }]), 'r'),
    ).toBeTruthy();
  });

  test('a mount point reached through a symbolic link, naming the link and where it points', () => {
    const root = mkdtempSync(join(tmpdir(), 'pgsnap-mount-link-'));
    try {
      mkdirSync(join(root, 'elsewhere'));
      symlinkSync(join(root, 'elsewhere'), join(root, 'srv'));
      expect(() => refuseLinksOnTheWay(join(root, 'srv', 'pg', 'main'), 'vol-0a1b2c3d4e5f60001')).toThrow(
        expect.objectContaining({
          name: 'MountPointInUseError',
          message: expect.stringContaining(
            `reached through ${join(root, 'srv')}, a symbolic link to ${join(root, 'elsewhere')}`,
          ),
        }),
      );
      // Real directories on the way, and ones not made yet, are fine.
      expect(() =>
        refuseLinksOnTheWay(join(root, 'elsewhere', 'pg', 'main'), 'vol-0a1b2c3d4e5f60001'),
      ).not.toThrow();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
