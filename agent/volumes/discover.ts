/**
 * Discovering which volumes hold the running cluster: its paths from the
 * server, the mounts from findmnt, the disks and EBS ids from sysfs.
 */
import { execFileSync } from 'node:child_process';
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

/** PGDATA, pg_wal and every tablespace, with symlinks resolved, from the running server. */
async function clusterPaths(): Promise<ClusterPath[]> {
  const client = await connect({ applicationName: 'pgsnap discover' });
  try {
    const dataDir = (await client.query<{ dir: string }>("SELECT current_setting('data_directory') AS dir"))
      .rows[0]!.dir;
    const tablespaces = await client.query<{ name: string; location: string }>(
      "SELECT spcname AS name, pg_tablespace_location(oid) AS location FROM pg_tablespace WHERE pg_tablespace_location(oid) <> ''",
    );
    return [
      { role: 'pgdata', path: realpathSync(dataDir) },
      { role: 'pg_wal', path: realpathSync(join(dataDir, 'pg_wal')) },
      ...tablespaces.rows.map((t) => ({
        role: 'tablespace' as const,
        name: t.name,
        path: realpathSync(t.location),
      })),
    ];
  } finally {
    await client.end();
  }
}

function hostSysfs(root = '/sys'): SysfsReader {
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

function findmnt(): FindmntOutput {
  const text = execFileSync('findmnt', ['--json', '--list', '--output', 'TARGET,SOURCE,FSTYPE,MAJ:MIN'], {
    encoding: 'utf8',
  });
  return JSON.parse(text) as FindmntOutput;
}

export async function discover(): Promise<Discovery> {
  return discoverVolumes(await clusterPaths(), findmnt(), hostSysfs());
}
