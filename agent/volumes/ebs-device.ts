/**
 * The block device of an attached EBS volume, from its volume id: on Nitro
 * instances the NVMe disk whose serial is the id without its dash
 * (`vol0123…`; AWS docs, "Amazon EBS and NVMe"), and on Xen instances the
 * attachment's device name (/dev/sdf appears as /dev/xvdf). With a partition
 * number, the partition of that disk.
 */
import type { SysfsReader } from './block-devices.ts';

export interface FoundDevice {
  /** /dev/nvme1n1, /dev/nvme1n1p1. */
  device: string;
  /** The disk's kernel name (nvme1n1). */
  disk: string;
}

export function ebsDiskOf(volumeId: string, sys: SysfsReader): string | undefined {
  const serial = volumeId.replace(/^vol-/, 'vol');
  return sys
    .list('block')
    .filter((name) => name.startsWith('nvme'))
    .find((name) => sys.read(`block/${name}/device/serial`)?.trim() === serial);
}

/** The kernel name of partition `partition` of `disk`, from sysfs (nvme1n1p1, loop3p1, xvdf1). */
export function partitionOf(disk: string, partition: number, sys: SysfsReader): string | undefined {
  return sys
    .list(`block/${disk}`)
    .find((name) => sys.read(`block/${disk}/${name}/partition`)?.trim() === String(partition));
}

/**
 * Where an attached volume is, or undefined when this host shows no such
 * disk (not attached yet, or attached elsewhere). `deviceName` is the
 * attachment's name as EC2 reports it, for Xen instances.
 */
export function findEbsDevice(
  volumeId: string,
  options: { partition?: number; deviceName?: string },
  sys: SysfsReader,
): FoundDevice | undefined {
  let disk = ebsDiskOf(volumeId, sys);
  if (!disk && options.deviceName) {
    const name = options.deviceName.replace(/^\/dev\//, '');
    disk = [name, name.replace(/^sd/, 'xvd')].find((candidate) => sys.list('block').includes(candidate));
  }
  if (!disk) return undefined;
  if (options.partition === undefined) return { device: `/dev/${disk}`, disk };
  const part = partitionOf(disk, options.partition, sys);
  return part ? { device: `/dev/${part}`, disk } : undefined;
}

/** What sits on top of a block device (device-mapper or md): a file system there spans more than this disk. */
export function holdersOf(device: string, sys: SysfsReader): string[] {
  return sys.list(`class/block/${device.replace(/^\/dev\//, '')}/holders`);
}
