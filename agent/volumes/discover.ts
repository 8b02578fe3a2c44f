/**
 * Discovering which volumes hold the running cluster: its paths from the
 * server, the mounts from findmnt, the disks and EBS ids from sysfs (or the
 * local volumes of PGSNAP_LOCAL_VOLUMES).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '../postgres/client.ts';
import {
  type ClusterPath,
  type Discovery,
  discoverVolumes,
  type FindmntOutput,
  type SysfsReader,
} from './block-devices.ts';
import { localVolumes } from './local-volumes.ts';

/**
 * PGDATA, pg_wal and every tablespace, with symlinks resolved, from the running server.
 * pg_wal is listed also when it is inside PGDATA: `holds` has always named it.
 */
async function clusterPaths(): Promise<ClusterPath[]> {
  const client = await connect({ applicationName: 'pgsnap discover' });
  try {
    const dataDir = (await client.query<{ dir: string }>("SELECT current_setting('data_directory') AS dir"))
      .rows[0]!.dir;
    const tablespaces = await client.query<{ oid: string; name: string; location: string }>(
      `SELECT oid::text, spcname AS name, pg_tablespace_location(oid) AS location
         FROM pg_tablespace WHERE pg_tablespace_location(oid) <> '' ORDER BY oid`,
    );
    return [
      { role: 'data', path: realpathSync(dataDir) },
      { role: 'wal', path: realpathSync(join(dataDir, 'pg_wal')) },
      ...tablespaces.rows.map((t) => ({
        role: 'tablespace' as const,
        oid: t.oid,
        name: t.name,
        path: realpathSync(t.location),
      })),
    ];
  } finally {
    await client.end();
  }
}

export function hostSysfs(root = '/sys'): SysfsReader {
  return {
    read(path) {
      try {
        return readFileSync(join(root, path), 'utf8');
      } catch {
        return undefined;
      }
    },
    list(path) {
      try {
        return readdirSync(join(root, path)).sort();
      } catch {
        return [];
      }
    },
  };
}

export function findmnt(): FindmntOutput {
  const text = execFileSync(
    'findmnt',
    ['--json', '--list', '--output', 'TARGET,SOURCE,FSTYPE,MAJ:MIN,UUID'],
    { encoding: 'utf8' },
  );
  return JSON.parse(text) as FindmntOutput;
}

/** A file system's UUID from blkid, for hosts where findmnt shows none (no udev database, as in containers). */
function blkidUuid(device: string): string | undefined {
  const result = spawnSync('blkid', ['-p', '-o', 'value', '-s', 'UUID', device], { encoding: 'utf8' });
  return result.status === 0 && result.stdout.trim() ? result.stdout.trim() : undefined;
}

export async function discover(): Promise<Discovery> {
  const found = discoverVolumes(await clusterPaths(), findmnt(), hostSysfs(), localVolumes());
  for (const volume of found.volumes) {
    if (volume.fsUuid || volume.fstype === 'dir') continue;
    const source = found.paths.find((p) => p.mount === volume.mountPoint)?.source.replace(/\[.*\]$/, '');
    const uuid = source?.startsWith('/dev/') ? blkidUuid(source) : undefined;
    if (uuid) volume.fsUuid = uuid;
  }
  return found;
}
