/**
 * pgsnap mount finds a restore's volume on the target host by its EBS id: the
 * NVMe disk whose serial is the id without its dash, the recorded partition
 * of it, never a device name from the record; and sees when LVM or md took the disk.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { recordedSysfs } from '../../agent/volumes/block-devices.ts';
import { findEbsDevice, holdersOf } from '../../agent/volumes/ebs-device.ts';

function sysfs(name: string) {
  const recording = JSON.parse(
    readFileSync(join(import.meta.dirname, '../fixtures/discover', `${name}.json`), 'utf8'),
  ) as { sys: Record<string, string> };
  return recordedSysfs(recording.sys);
}

describe('finding an attached EBS volume by its id', () => {
  const nitro = sysfs('nitro-separate-volumes');

  test('the NVMe disk whose serial is the volume id without its dash', () => {
    expect(findEbsDevice('vol-0a1b2c3d4e5f60002', {}, nitro)).toEqual({
      device: '/dev/nvme2n1',
      disk: 'nvme2n1',
    });
  });

  test('with a recorded partition, that partition of the disk', () => {
    expect(findEbsDevice('vol-0a1b2c3d4e5f60003', { partition: 1 }, nitro)).toEqual({
      device: '/dev/nvme3n1p1',
      disk: 'nvme3n1',
    });
    // A partition the new volume does not have is no device: pgsnap mount says the volume is not there.
    expect(findEbsDevice('vol-0a1b2c3d4e5f60003', { partition: 2 }, nitro)).toBeUndefined();
  });

  test('a volume not attached here is not found', () => {
    expect(findEbsDevice('vol-0ffffffffffffffff', {}, nitro)).toBeUndefined();
  });

  test('on Xen, whose disks carry no volume id, no disk is taken for the volume (xvdf is there)', () => {
    const xen = sysfs('xen');
    expect(xen.list('block')).toContain('xvdf');
    expect(findEbsDevice('vol-0a1b2c3d4e5f60009', {}, xen)).toBeUndefined();
  });

  test('a disk that device-mapper holds (LVM took it) shows its holders', () => {
    const lvm = recordedSysfs({
      'block/nvme1n1/device/serial': 'vol0a1b2c3d4e5f60011\n',
      'class/block/nvme1n1/holders/dm-0': '',
    });
    expect(findEbsDevice('vol-0a1b2c3d4e5f60011', {}, lvm)).toMatchObject({ device: '/dev/nvme1n1' });
    expect(holdersOf('/dev/nvme1n1', lvm)).toEqual(['dm-0']);
    expect(holdersOf('/dev/nvme2n1', nitro)).toEqual([]);
  });
});
