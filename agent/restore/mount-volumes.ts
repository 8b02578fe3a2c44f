/**
 * `pgsnap mount` and `pgsnap unmount` on a restore's target host: each volume
 * of the restore record, found by its EBS id (or as a local volume), put at
 * `(mountRoot ?? '') + mountPoint`, the place it had on the source host; and
 * taken away again, only what this restore placed.
 *
 * XFS refuses to mount a second file system with the UUID of one already
 * mounted ("Filesystem has duplicate UUID"; xfs(5), `nouuid`): a volume made
 * from a snapshot of a volume that is mounted on the same host has that
 * UUID, so such a mount gets `-o nouuid`.
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmdirSync,
  statSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { dirname } from 'node:path';
import {
  MountPointInUseError,
  PreconditionError,
  UnsupportedVolumeLayoutError,
  VolumeNotFoundError,
} from '#domain/errors';
import type { Repository } from '#domain/repository/repository';
import type { RestoreRecord, RestoreVolume } from '#domain/repository/restore-record';
import { ownedDirectoryOnPlainPath } from '../postgres/owned-paths.ts';
import type { FindmntOutput, SysfsReader } from '../volumes/block-devices.ts';
import { findmnt, hostSysfs } from '../volumes/discover.ts';
import { findEbsDevice, holdersOf, partitionOf } from '../volumes/ebs-device.ts';
import { type LocalVolume, localVolumes, localVolumesVariable } from '../volumes/local-volumes.ts';
import { readRecordInProgress } from './read-record.ts';
import {
  mountableFileSystems,
  refuseLinksOnTheWay,
  requireRootOwnedMountRoot,
  restoredMountOptions,
  restoredPath,
} from './restore-paths.ts';

/** What the host has: sysfs, its mounts, the local volumes, and whether pgsnap may mount. */
export interface Host {
  sys: SysfsReader;
  mounts(): FindmntOutput;
  local: LocalVolume[];
  isRoot: boolean;
}

export function thisHost(env: NodeJS.ProcessEnv = process.env): Host {
  return { sys: hostSysfs(), mounts: findmnt, local: localVolumes(env), isRoot: process.getuid?.() === 0 };
}

/** One volume in place, as the host report lists it. */
export interface PlacedVolume {
  volumeId: string;
  /** The block device, or the local volume's directory. */
  device: string;
  mountPoint: string;
  /** Mount options pgsnap chose (nouuid), or `bind` / `symlink` for a local directory. */
  options?: string;
  /** It was already there from this device: nothing was done. */
  already: boolean;
}

type Source = { kind: 'device'; device: string } | { kind: 'dir'; path: string };

function volumeIdOf(volume: RestoreVolume): string {
  if (!volume.volumeId) {
    throw new VolumeNotFoundError(
      `the restore record has no volume id for the volume made from ${volume.snapshotId} yet: ` +
        'CreateVolume has not returned; mount once the state machine has attached the volumes',
    );
  }
  return volume.volumeId;
}

function sourceOf(volume: RestoreVolume, host: Host): Source {
  const volumeId = volumeIdOf(volume);
  const local = host.local.find((v) => v.volumeId === volumeId);
  if (local && !local.device) return { kind: 'dir', path: local.path };
  if (local?.device) {
    const partition = volume.source.partition;
    if (partition === undefined) return { kind: 'device', device: local.device };
    const part = partitionOf(local.device.replace(/^\/dev\//, ''), partition, host.sys);
    if (!part) {
      throw new VolumeNotFoundError(
        `${local.device} (volume ${volumeId} in ${localVolumesVariable}) has no partition ${partition}, ` +
          'where the file system was on the source',
      );
    }
    return { kind: 'device', device: `/dev/${part}` };
  }
  // By its id only: the record's device name would name whatever disk of this host has it.
  const found = findEbsDevice(
    volumeId,
    volume.source.partition ? { partition: volume.source.partition } : {},
    host.sys,
  );
  if (!found) {
    const where = volume.source.partition ? ` (partition ${volume.source.partition})` : '';
    throw new VolumeNotFoundError(
      `volume ${volumeId}${where} is not attached to this host: no NVMe disk has serial ${volumeId.replace('-', '')} ` +
        '(a restore target must be a Nitro instance, whose disks carry their volume id). Attach it to this instance ' +
        `(aws ec2 attach-volume --volume-id ${volumeId} …) and run pgsnap mount again` +
        `${host.local.length > 0 ? `; ${localVolumesVariable} lists no such volume either` : ''}`,
    );
  }
  return { kind: 'device', device: found.device };
}

/** `source` of a findmnt line without the bind mount's `[/subdir]`. */
function mountSource(source: string): string {
  return source.replace(/\[.*\]$/, '');
}

function sameDevice(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b) || statSync(a).rdev === statSync(b).rdev;
  } catch {
    return a === b;
  }
}

/** The same directory: a bind mount's root is the very inode of its source. */
function sameDirectory(a: string, b: string): boolean {
  try {
    const [x, y] = [statSync(a), statSync(b)];
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/** The top mount at `target`, if any. */
function mountAt(target: string, mounts: FindmntOutput) {
  return mounts.filesystems.filter((fs) => fs.target === target).at(-1);
}

/** Whether `source` is already in place at `target`; throws MountPointInUseError when something else is. */
function alreadyPlaced(source: Source, target: string, mounts: FindmntOutput, volumeId: string): boolean {
  const retry = 'then run the restore again';
  const mounted = mountAt(target, mounts);
  if (mounted) {
    const ours =
      source.kind === 'device'
        ? sameDevice(mountSource(mounted.source), source.device)
        : sameDirectory(target, source.path);
    if (ours) return true;
    throw new MountPointInUseError(
      `mount point ${target} for volume ${volumeId} is in use: ${mounted.source} (${mounted.fstype}) is mounted ` +
        `there. Unmount it (umount ${target}), or restore below another directory (the request's mountRoot), ${retry}`,
    );
  }
  const found = lstatSync(target, { throwIfNoEntry: false });
  if (!found) return false;
  if (found.isSymbolicLink()) {
    if (source.kind === 'dir' && readlinkSync(target) === source.path) return true;
    throw new MountPointInUseError(
      `mount point ${target} for volume ${volumeId} is a symbolic link to ${readlinkSync(target)}. ` +
        `Remove it (rm ${target}), or restore below another directory (the request's mountRoot), ${retry}`,
    );
  }
  if (!found.isDirectory()) {
    throw new MountPointInUseError(
      `mount point ${target} for volume ${volumeId} is a file, not a directory. Move it away, or restore below ` +
        `another directory (the request's mountRoot), ${retry}`,
    );
  }
  const entries = readdirSync(target);
  if (entries.length > 0) {
    const shown = entries.slice(0, 5).join(', ') + (entries.length > 5 ? ', …' : '');
    throw new MountPointInUseError(
      `mount point ${target} for volume ${volumeId} is not empty (${shown}): mounting over it would hide those ` +
        `files. Empty or move it, or restore below another directory (the request's mountRoot), ${retry}`,
    );
  }
  return false;
}

function probe(device: string): { type?: string; uuid?: string } {
  const result = spawnSync('blkid', ['-p', '-o', 'export', device], { encoding: 'utf8' });
  const field = (name: string) => new RegExp(`^${name}=(.*)$`, 'm').exec(result.stdout ?? '')?.[1];
  const type = field('TYPE');
  const uuid = field('UUID');
  return { ...(type ? { type } : {}), ...(uuid ? { uuid } : {}) };
}

/** The UUIDs of the XFS file systems mounted here: findmnt's, or blkid's where findmnt has none (no udev). */
function mountedXfsUuids(mounts: FindmntOutput): string[] {
  return mounts.filesystems
    .filter((fs) => fs.fstype === 'xfs')
    .map((fs) => fs.uuid ?? (fs.source.startsWith('/dev/') ? probe(mountSource(fs.source)).uuid : undefined))
    .filter((uuid): uuid is string => uuid !== undefined);
}

function run(command: string, args: string[]): void {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0) {
    throw new PreconditionError(
      `${command} ${args.join(' ')} failed (exit ${result.status ?? result.signal}): ${(result.stderr || result.stdout).trim()}`,
    );
  }
}

/**
 * Refuses a record in which two volumes share one mount point: their file
 * system spans both (an LVM volume group, an md array), which a restore has
 * to assemble before anything can be mounted.
 */
function refuseSpanningFileSystems(record: RestoreRecord): void {
  const byMount = new Map<string, string[]>();
  for (const volume of record.volumes) {
    const ids = byMount.get(volume.source.mountPoint) ?? [];
    ids.push(volume.volumeId ?? volume.snapshotId);
    byMount.set(volume.source.mountPoint, ids);
  }
  for (const [mountPoint, ids] of byMount) {
    if (ids.length > 1) {
      throw new UnsupportedVolumeLayoutError(
        `the file system at ${mountPoint} spans ${ids.length} volumes (${ids.join(', ')}): LVM or md. ` +
          'pgsnap mount mounts one volume per file system; assemble the volume group or array by hand ' +
          '(vgchange -ay, mdadm --assemble), mount it, and run pgsnap restore --pgdata DIR',
      );
    }
  }
}

/** Parents first: a volume mounted inside another's mount point goes on top of it. */
function outermostFirst(record: RestoreRecord): RestoreVolume[] {
  return [...record.volumes].sort((a, b) => a.source.mountPoint.length - b.source.mountPoint.length);
}

/** `pgsnap mount`: the restore record read from the repository, its volumes put in place. */
export async function mountRestore(repository: Repository, restoreId: string): Promise<PlacedVolume[]> {
  return mountVolumes(await readRecordInProgress(repository, restoreId));
}

/**
 * Puts every volume of the record in place, parents first. When one cannot
 * be, those this call placed are taken away again before the error goes on:
 * a refused restore leaves the host as it found it.
 */
export function mountVolumes(record: RestoreRecord, host: Host = thisHost()): PlacedVolume[] {
  refuseSpanningFileSystems(record);
  const placed: PlacedVolume[] = [];
  try {
    placeEach(record, host, placed);
  } catch (error) {
    for (const done of placed.filter((p) => !p.already).reverse()) {
      if (done.options === 'symlink') unlinkSync(done.mountPoint);
      else spawnSync('umount', [done.mountPoint]);
    }
    throw error;
  }
  // In the record's order, whatever order they were mounted in.
  const order = record.volumes.map((v) => v.volumeId);
  return placed.sort((a, b) => order.indexOf(a.volumeId) - order.indexOf(b.volumeId));
}

function placeEach(record: RestoreRecord, host: Host, placed: PlacedVolume[]): void {
  if (host.isRoot) requireRootOwnedMountRoot(record.mountRoot);
  for (const volume of outermostFirst(record)) {
    const volumeId = volumeIdOf(volume);
    const source = sourceOf(volume, host);
    const target = restoredPath(record, volume.source.mountPoint);
    refuseLinksOnTheWay(target, volumeId);
    const mounts = host.mounts();
    if (source.kind === 'device') {
      const holders = holdersOf(source.device, host.sys);
      if (holders.length > 0) {
        throw new UnsupportedVolumeLayoutError(
          `${source.device} (volume ${volumeId}) is in use by ${holders.join(', ')} (LVM or md took it when it was ` +
            'attached): its file system spans more than this volume, which pgsnap mount does not assemble',
        );
      }
    }
    if (alreadyPlaced(source, target, mounts, volumeId)) {
      placed.push({
        volumeId,
        device: source.kind === 'device' ? source.device : source.path,
        mountPoint: target,
        already: true,
      });
      continue;
    }
    if (source.kind === 'dir') {
      if (host.isRoot) {
        ownedDirectoryOnPlainPath(target, { uid: 0, gid: 0 }, 0o755);
        // util-linux applies the flags of a bind mount with a remount of its own (mount(8), --bind).
        const options = ['bind', ...restoredMountOptions].join(',');
        run('mount', ['--bind', '-o', restoredMountOptions.join(','), source.path, target]);
        placed.push({ volumeId, device: source.path, mountPoint: target, options, already: false });
      } else {
        // Without root nothing can be mounted: the non-root demo links the directory at the mount point.
        mkdirSync(dirname(target), { recursive: true });
        if (existsSync(target)) rmdirSync(target);
        symlinkSync(source.path, target);
        placed.push({
          volumeId,
          device: source.path,
          mountPoint: target,
          options: 'symlink',
          already: false,
        });
      }
      continue;
    }
    if (!host.isRoot) {
      throw new PreconditionError(
        `mounting ${source.device} (volume ${volumeId}) at ${target} needs root: run pgsnap mount as root ` +
          '(the SSM document does)',
      );
    }
    // The type on the device, not the record's: and only one of the file systems pgsnap mounts.
    const { type: fstype, uuid } = probe(source.device);
    if (!fstype || !(mountableFileSystems as readonly string[]).includes(fstype)) {
      throw new UnsupportedVolumeLayoutError(
        `${source.device} (volume ${volumeId}) holds ${fstype ? `a ${fstype} file system` : 'no file system blkid knows'}: ` +
          `pgsnap mounts only ${mountableFileSystems.join(', ')} from a restored volume`,
      );
    }
    const options: string[] = [...restoredMountOptions];
    // A file system with this UUID already mounted (the source's own volume, on the same host): XFS refuses it.
    if (fstype === 'xfs' && uuid && mountedXfsUuids(mounts).includes(uuid)) options.push('nouuid');
    ownedDirectoryOnPlainPath(target, { uid: 0, gid: 0 }, 0o755);
    run('mount', ['-t', fstype, '-o', options.join(','), source.device, target]);
    placed.push({
      volumeId,
      device: source.device,
      mountPoint: target,
      options: options.join(','),
      already: false,
    });
  }
}

export interface RemovedVolume {
  volumeId: string;
  mountPoint: string;
  /** What unmount did: unmounted it, removed the link it made, or found nothing of this restore there. */
  action: 'unmounted' | 'unlinked' | 'not mounted';
}

/** Takes away what mountVolumes placed for this record: only its volumes' mounts and links. Idempotent. */
export function unmountVolumes(record: RestoreRecord, host: Host = thisHost()): RemovedVolume[] {
  const removed: RemovedVolume[] = [];
  for (const volume of outermostFirst(record).reverse()) {
    const target = restoredPath(record, volume.source.mountPoint);
    const volumeId = volume.volumeId ?? volume.snapshotId;
    let source: Source | undefined;
    try {
      source = volume.volumeId ? sourceOf(volume, host) : undefined;
    } catch (error) {
      if (!(error instanceof VolumeNotFoundError)) throw error;
    }
    const link = lstatSync(target, { throwIfNoEntry: false });
    if (source?.kind === 'dir' && link?.isSymbolicLink() && readlinkSync(target) === source.path) {
      unlinkSync(target);
      removed.push({ volumeId, mountPoint: target, action: 'unlinked' });
      continue;
    }
    let unmounted = false;
    for (;;) {
      const mounted = mountAt(target, host.mounts());
      if (!mounted) break;
      const ours = source
        ? source.kind === 'device'
          ? sameDevice(mountSource(mounted.source), source.device)
          : sameDirectory(target, source.path)
        : false;
      if (!ours) break;
      const result = spawnSync('umount', [target], { encoding: 'utf8' });
      if (result.status !== 0) {
        throw new PreconditionError(
          `umount ${target} (volume ${volumeId}) failed: ${result.stderr.trim()}. A process still uses it ` +
            `(fuser -vm ${target}); a restored server is stopped with pgsnap unmount --stop-server`,
        );
      }
      unmounted = true;
    }
    removed.push({ volumeId, mountPoint: target, action: unmounted ? 'unmounted' : 'not mounted' });
  }
  return removed;
}
