/**
 * Real btrfs volumes on loop devices, for the demo and the tests that need
 * volume snapshots (PGDATA, a tablespace and pg_wal each on a file system of its
 * own). They need root, losetup and mkfs.btrfs (btrfs-progs).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export function btrfsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'btrfs volumes need root (loop devices and mount)';
  for (const tool of ['losetup', 'mkfs.btrfs', 'btrfs', 'mount']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
      return `${tool} is missing (apt-get install btrfs-progs)`;
    }
  }
  if (spawnSync('losetup', ['-f']).status !== 0) return 'no free loop device';
  return undefined;
}

export interface BtrfsVolume {
  device: string;
  mountPoint: string;
  /** A subvolume at the top of the volume, owned by the server user. */
  subvolume: string;
}

export class BtrfsVolumes {
  readonly volumes: BtrfsVolume[] = [];

  constructor(private readonly root: string) {
    mkdirSync(root, { recursive: true, mode: 0o711 });
  }

  /** A new file system of `sizeMb` on a loop device, mounted under root, with one subvolume in it. */
  create(name: string, sizeMb = 300): BtrfsVolume {
    const image = join(this.root, `${name}.img`);
    execFileSync('truncate', ['-s', `${sizeMb}M`, image]);
    const device = execFileSync('losetup', ['-f', '--show', image], { encoding: 'utf8' }).trim();
    const mountPoint = join(this.root, `vol-${name}`);
    mkdirSync(mountPoint, { recursive: true });
    const volume = { device, mountPoint, subvolume: join(mountPoint, name) };
    this.volumes.push(volume);
    execFileSync('mkfs.btrfs', ['-q', device]);
    execFileSync('mount', [device, mountPoint]);
    execFileSync('btrfs', ['subvolume', 'create', volume.subvolume], { stdio: 'ignore' });
    execFileSync('chown', ['postgres:postgres', volume.subvolume]);
    execFileSync('chmod', ['700', volume.subvolume]);
    return volume;
  }

  /** Unmounts and detaches everything, also after a failed test. */
  destroy(): void {
    for (const volume of this.volumes.reverse()) {
      spawnSync('umount', ['-l', volume.mountPoint]);
      spawnSync('losetup', ['-d', volume.device]);
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}
