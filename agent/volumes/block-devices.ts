/**
 * Which EBS volumes hold a cluster: each path (PGDATA, every tablespace,
 * pg_wal) to its mount (findmnt), the mount's block device to the disks under
 * it (partitions, LVM and md through sysfs `slaves/`), and each disk to its EBS
 * volume id. On Nitro instances an EBS volume is an NVMe disk whose serial is
 * the volume id without its dash (`vol0123…`), model "Amazon Elastic Block
 * Store" (AWS docs, "Amazon EBS and NVMe"); on Xen instances (xvd*, sd*) the
 * host cannot see the volume id, only the device name.
 */

/** Reads sysfs, relative to its root (`/sys` on a host, a recording in tests). */
export interface SysfsReader {
  read(path: string): string | undefined;
  list(path: string): string[];
}

/** `findmnt --json --list --output TARGET,SOURCE,FSTYPE,MAJ:MIN`. */
export interface FindmntOutput {
  filesystems: Array<{ target: string; source: string; fstype: string; 'maj:min': string }>;
}

export type PathRole = 'pgdata' | 'pg_wal' | 'tablespace';

export interface ClusterPath {
  role: PathRole;
  /** The real path (symlinks resolved). */
  path: string;
  /** The tablespace's name. */
  name?: string;
}

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
  /** The mount's own block device (dm-0, md0, nvme1n1p1…). */
  device: string;
  disks: Disk[];
}

export interface Discovery {
  paths: PathPlacement[];
  /** Every EBS volume that holds part of the cluster, once, with what it holds. */
  volumes: Array<{ volumeId: string; disk: string; holds: string[] }>;
  /** What stops a consistent snapshot set; empty when the volumes are all known. */
  problems: string[];
}

const ebsModel = 'Amazon Elastic Block Store';

function mountOf(path: string, findmnt: FindmntOutput) {
  const containing = findmnt.filesystems.filter(
    (fs) => path === fs.target || path.startsWith(fs.target === '/' ? '/' : `${fs.target}/`),
  );
  // The innermost mount wins; the last one listed when two are stacked on one target.
  return containing.reduce<(typeof containing)[number] | undefined>(
    (best, fs) => (!best || fs.target.length >= best.target.length ? fs : best),
    undefined,
  );
}

function deviceNamed(majMin: string, sys: SysfsReader): string | undefined {
  return sys.list('class/block').find((name) => sys.read(`class/block/${name}/dev`)?.trim() === majMin);
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

export function discoverVolumes(paths: ClusterPath[], findmnt: FindmntOutput, sys: SysfsReader): Discovery {
  const problems: string[] = [];
  const placements: PathPlacement[] = [];
  for (const clusterPath of paths) {
    const what = clusterPath.role === 'tablespace' ? `tablespace ${clusterPath.name}` : clusterPath.role;
    const mount = mountOf(clusterPath.path, findmnt);
    if (!mount) {
      problems.push(`${what} (${clusterPath.path}) is on no mount findmnt lists`);
      continue;
    }
    const device = deviceNamed(mount['maj:min'], sys);
    if (!device) {
      problems.push(
        `${what} (${clusterPath.path}) is on ${mount.source} (${mount.fstype}, device ${mount['maj:min']}), ` +
          'which is not a block device: it cannot be snapshotted with EBS',
      );
      continue;
    }
    const disks = disksUnder(device, sys).map((disk) => describeDisk(disk, sys));
    for (const disk of disks) {
      if (disk.volumeId) continue;
      problems.push(
        disk.model?.includes('Instance Storage')
          ? `${what} is on ${disk.disk}, an instance store disk: it is lost with the instance and cannot be snapshotted`
          : `${what} is on ${disk.disk}${disk.model ? ` (${disk.model})` : ''}, which shows no EBS volume id ` +
              '(EBS on Xen instances shows none; other disks are not EBS): if it is EBS, list its volume id as ' +
              'volumeIds in the pgsnap configuration',
      );
    }
    placements.push({
      ...clusterPath,
      mount: mount.target,
      source: mount.source,
      fstype: mount.fstype,
      device,
      disks,
    });
  }
  const volumes = new Map<string, { volumeId: string; disk: string; holds: string[] }>();
  for (const placement of placements) {
    const label = placement.role === 'tablespace' ? `tablespace ${placement.name}` : placement.role;
    for (const disk of placement.disks) {
      if (!disk.volumeId) continue;
      const volume = volumes.get(disk.volumeId) ?? { volumeId: disk.volumeId, disk: disk.disk, holds: [] };
      if (!volume.holds.includes(label)) volume.holds.push(label);
      volumes.set(disk.volumeId, volume);
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
