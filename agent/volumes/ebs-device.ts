/**
 * The block device of an attached EBS volume, from its volume id: the NVMe
 * disk whose serial is the id without its dash (`vol0123…`; AWS docs, "Amazon
 * EBS and NVMe", Nitro instances). With a partition number, the partition of
 * that disk. Only the id counts: a device name comes from the restore record,
 * which a database host may have written, and would name one of the target's
 * own disks; Xen instances, whose disks carry no volume id, cannot be
 * restore targets.
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
 * Where an attached volume is, or undefined when this host shows no disk
 * with its id (not attached yet, attached elsewhere, or a Xen instance).
 */
export function findEbsDevice(
  volumeId: string,
  options: { partition?: number },
  sys: SysfsReader,
): FoundDevice | undefined {
  const disk = ebsDiskOf(volumeId, sys);
  if (!disk) return undefined;
  if (options.partition === undefined) return { device: `/dev/${disk}`, disk };
  const part = partitionOf(disk, options.partition, sys);
  return part ? { device: `/dev/${part}`, disk } : undefined;
}

/** What sits on top of a block device (device-mapper or md): a file system there spans more than this disk. */
export function holdersOf(device: string, sys: SysfsReader): string[] {
  return sys.list(`class/block/${device.replace(/^\/dev\//, '')}/holders`);
}
