/**
 * Which EBS volumes hold a cluster: each path (PGDATA, every tablespace,
 * pg_wal) to its mount (findmnt), the mount's block device to the disks under
 * it (partitions, LVM and md through sysfs `slaves/`), and each disk to its EBS
 * volume id. On Nitro instances an EBS volume is an NVMe disk whose serial is
 * the volume id without its dash (`vol0123…`), model "Amazon Elastic Block
 * Store" (AWS docs, "Amazon EBS and NVMe"); on Xen instances (xvd*, sd*) the
 * host cannot see the volume id, only the device name.
 */
import type { ClusterPath } from './cluster-paths.ts';
import type { LocalVolume } from './local-volumes.ts';

/** Reads sysfs, relative to its root (`/sys` on a host, a recording in tests). */
export interface SysfsReader {
  read(path: string): string | undefined;
  list(path: string): string[];
}

/** `findmnt --json --list --output TARGET,SOURCE,FSTYPE,MAJ:MIN,UUID`. */
export interface FindmntOutput {
  filesystems: Array<{
    target: string;
    source: string;
    fstype: string;
    'maj:min': string;
    /** The file system's UUID (null when it has none, absent in recordings made without the column). */
    uuid?: string | null;
  }>;
}

export type { ClusterPath } from './cluster-paths.ts';

export interface Disk {
  /** Kernel name: nvme1n1, xvdf. */
  disk: string;
  /** The EBS volume id, when the host can tell it. */
  volumeId?: string;
  model?: string;
}

export interface PathPlacement extends ClusterPath {
  mount: string;
  source: string;
  fstype: string;
  fsUuid?: string;
  /** The mount's own block device (dm-0, md0, nvme1n1p1…). */
  device: string;
  /** The partition number, when the file system is on a partition of a disk. */
  partition?: number;
  disks: Disk[];
}

/** One part of the cluster on a volume, as a restore puts it back (the manifest's volume `holds`). */
export interface VolumePath {
  role: 'data' | 'tablespace' | 'wal';
  path: string;
  /** The tablespace's OID, as in tablespace_map. */
  tablespaceOid?: string;
}

/** An EBS volume (or a local volume) that holds part of the cluster. */
export interface DiscoveredVolume {
  volumeId: string;
  disk: string;
  /** What it holds, as words (`pgdata`, `pg_wal`, `tablespace archive_ts`); the create-snapshots step reads them. */
  holds: string[];
  /** Where its file system is mounted, and what it is: what `pgsnap mount` needs to put it back. */
  mountPoint: string;
  fstype: string;
  fsUuid?: string;
  partition?: number;
  paths: VolumePath[];
}

export interface Discovery {
  paths: PathPlacement[];
  /** Every EBS volume that holds part of the cluster, once, with what it holds. */
  volumes: DiscoveredVolume[];
  /** What stops a consistent snapshot set; empty when the volumes are all known. */
  problems: string[];
}

/** The words `holds` has always used: the create-snapshots step and operators read them. */
export function holdsLabel(path: ClusterPath): string {
  if (path.role === 'tablespace') return `tablespace ${path.name ?? path.oid}`;
  return path.role === 'data' ? 'pgdata' : 'pg_wal';
}

function volumePath(path: ClusterPath): VolumePath {
  return { role: path.role, path: path.path, ...(path.oid ? { tablespaceOid: path.oid } : {}) };
}

function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);
}

const ebsModel = 'Amazon Elastic Block Store';

function mountOf(path: string, findmnt: FindmntOutput) {
  const containing = findmnt.filesystems.filter((fs) => isUnder(path, fs.target));
  // The innermost mount wins; the last one listed when two are stacked on one target.
  return containing.reduce<(typeof containing)[number] | undefined>(
    (best, fs) => (!best || fs.target.length >= best.target.length ? fs : best),
    undefined,
  );
}

function deviceNamed(majMin: string, sys: SysfsReader): string | undefined {
  return sys.list('class/block').find((name) => sys.read(`class/block/${name}/dev`)?.trim() === majMin);
}

/**
 * The block device a mount is on: by its device number, else by its source. btrfs gives each of its file
 * systems (and subvolumes) an anonymous device number (0:N), so findmnt's maj:min names no block device
 * there; its source does (`/dev/loop0[/data]`, the subvolume in brackets; `/dev/mapper/NAME` for device-mapper).
 */
function mountDevice(mount: { source: string; 'maj:min': string }, sys: SysfsReader): string | undefined {
  const byNumber = deviceNamed(mount['maj:min'], sys);
  if (byNumber) return byNumber;
  const name = /^\/dev\/(?:mapper\/)?([^[\s/]+)(?:\[.*\])?$/.exec(mount.source)?.[1];
  if (!name) return undefined;
  if (sys.read(`class/block/${name}/dev`) !== undefined) return name;
  return sys.list('class/block').find((block) => sys.read(`class/block/${block}/dm/name`)?.trim() === name);
}

/** The disks under a block device: through device-mapper/md members and from a partition to its disk. */
function disksUnder(device: string, sys: SysfsReader, seen = new Set<string>()): string[] {
  if (seen.has(device)) return [];
  seen.add(device);
  const members = sys.list(`class/block/${device}/slaves`);
  if (members.length > 0) return members.flatMap((member) => disksUnder(member, sys, seen));
  if (sys.read(`class/block/${device}/partition`) !== undefined) {
    const parent = sys.list('block').find((disk) => sys.list(`block/${disk}`).includes(device));
    return parent ? [parent] : [device];
  }
  return [device];
}

function describeDisk(disk: string, sys: SysfsReader): Disk {
  const model = sys.read(`block/${disk}/device/model`)?.trim();
  const serial = sys.read(`block/${disk}/device/serial`)?.trim();
  const volumeId =
    model === ebsModel && serial && /^vol[0-9a-f]{8,17}$/.test(serial) ? `vol-${serial.slice(3)}` : undefined;
  return { disk, ...(volumeId ? { volumeId } : {}), ...(model ? { model } : {}) };
}

function partitionNumber(device: string, sys: SysfsReader): number | undefined {
  const text = sys.read(`class/block/${device}/partition`)?.trim();
  return text && /^[1-9][0-9]*$/.test(text) ? Number(text) : undefined;
}

/**
 * Places each path of the cluster on its volume. A path under a local volume
 * (PGSNAP_LOCAL_VOLUMES: the one-machine harness) is held by it; every other
 * path goes from its mount to the disks under it and their EBS ids.
 */
export function discoverVolumes(
  paths: ClusterPath[],
  findmnt: FindmntOutput,
  sys: SysfsReader,
  localVolumes: LocalVolume[] = [],
): Discovery {
  const problems: string[] = [];
  const placements: PathPlacement[] = [];
  const volumes = new Map<string, DiscoveredVolume>();
  const add = (volume: Omit<DiscoveredVolume, 'holds' | 'paths'>, clusterPath: ClusterPath) => {
    const found = volumes.get(volume.volumeId) ?? { ...volume, holds: [], paths: [] };
    const label = holdsLabel(clusterPath);
    if (!found.holds.includes(label)) found.holds.push(label);
    if (!found.paths.some((p) => p.role === clusterPath.role && p.path === clusterPath.path))
      found.paths.push(volumePath(clusterPath));
    volumes.set(volume.volumeId, found);
  };
  for (const clusterPath of paths) {
    const what = holdsLabel(clusterPath);
    const local = localVolumes
      .filter((v) => isUnder(clusterPath.path, v.path))
      .sort((a, b) => b.path.length - a.path.length)[0];
    if (local) {
      // The local volume's own mount when it is one (a loop device), else a plain directory.
      const mounted = findmnt.filesystems.filter((fs) => fs.target === local.path).at(-1);
      const disk = local.device ? local.device.replace(/^\/dev\//, '') : 'dir';
      placements.push({
        ...clusterPath,
        mount: local.path,
        source: mounted?.source ?? local.device ?? local.path,
        fstype: mounted?.fstype ?? 'dir',
        ...(mounted?.uuid ? { fsUuid: mounted.uuid } : {}),
        device: disk,
        disks: [{ disk, volumeId: local.volumeId }],
      });
      add(
        {
          volumeId: local.volumeId,
          disk,
          mountPoint: local.path,
          fstype: mounted?.fstype ?? 'dir',
          ...(mounted?.uuid ? { fsUuid: mounted.uuid } : {}),
        },
        clusterPath,
      );
      continue;
    }
    const mount = mountOf(clusterPath.path, findmnt);
    if (!mount) {
      problems.push(`${what} (${clusterPath.path}) is on no mount findmnt lists`);
      continue;
    }
    const device = mountDevice(mount, sys);
    if (!device) {
      problems.push(
        `${what} (${clusterPath.path}) is on ${mount.source} (${mount.fstype}, device ${mount['maj:min']}), ` +
          'which is not a block device: it cannot be snapshotted with EBS',
      );
      continue;
    }
    const disks = disksUnder(device, sys).map((disk) => describeDisk(disk, sys));
    // A partition straight on a disk; under LVM or md the volumes are members, not partitions of the file system.
    const partition =
      disks.length === 1 && disks[0]!.disk !== device ? partitionNumber(device, sys) : undefined;
    for (const disk of disks) {
      if (disk.volumeId) continue;
      problems.push(
        disk.model?.includes('Instance Storage')
          ? `${what} is on ${disk.disk}, an instance store disk: it is lost with the instance and cannot be snapshotted`
          : /^loop\d+$/.test(disk.disk)
            ? `${what} is on ${disk.disk}, a loop device (a file on another file system), not an EBS volume: ` +
              'EBS cannot snapshot it; on one machine, take snapshots with a local provider instead'
            : `${what} is on ${disk.disk}${disk.model ? ` (${disk.model})` : ''}, which shows no EBS volume id ` +
              '(EBS on Xen instances shows none; other disks are not EBS): if it is EBS, list its volume id as ' +
              'volumeIds in the pgsnap configuration',
      );
    }
    const fs = {
      fstype: mount.fstype,
      ...(mount.uuid ? { fsUuid: mount.uuid } : {}),
      ...(partition ? { partition } : {}),
    };
    placements.push({ ...clusterPath, mount: mount.target, source: mount.source, ...fs, device, disks });
    for (const disk of disks) {
      if (disk.volumeId)
        add({ volumeId: disk.volumeId, disk: disk.disk, mountPoint: mount.target, ...fs }, clusterPath);
    }
  }
  return { paths: placements, volumes: [...volumes.values()], problems };
}

/** A sysfs recording: file contents by path; directories are implied by the paths under them. */
export function recordedSysfs(files: Record<string, string>): SysfsReader {
  return {
    read: (path) => files[path],
    list: (path) => {
      const prefix = `${path}/`;
      const names = Object.keys(files)
        .filter((key) => key.startsWith(prefix))
        .map((key) => key.slice(prefix.length).split('/')[0]!);
      return [...new Set(names)].sort();
    },
  };
}
