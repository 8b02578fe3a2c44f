/**
 * Where a cluster keeps its files on this host: the data directory, each
 * tablespace, and pg_wal (which may be a symlink to another volume). Snapshot
 * providers and `pgsnap discover` start from here.
 */
import { readlinkSync, realpathSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { Client } from '../postgres/client.ts';

export interface ClusterPath {
  role: 'data' | 'tablespace' | 'wal';
  /** The real path (symlinks resolved). */
  path: string;
  /** The tablespace's OID, as in tablespace_map. */
  oid?: string;
  name?: string;
}

export async function clusterPaths(client: Client): Promise<ClusterPath[]> {
  const { rows } = await client.query<{ dir: string }>("SELECT current_setting('data_directory') AS dir");
  const dataDirectory = realpathSync(rows[0]!.dir);
  const paths: ClusterPath[] = [{ role: 'data', path: dataDirectory }];
  const tablespaces = await client.query<{ oid: string; name: string; location: string }>(
    `SELECT oid::text, spcname AS name, pg_tablespace_location(oid) AS location
       FROM pg_tablespace WHERE pg_tablespace_location(oid) <> '' ORDER BY oid`,
  );
  for (const t of tablespaces.rows)
    paths.push({ role: 'tablespace', path: realpathSync(t.location), oid: t.oid, name: t.name });
  // initdb --waldir makes pg_wal a symlink to another directory, often another volume.
  try {
    const target = readlinkSync(join(dataDirectory, 'pg_wal'));
    const walPath = realpathSync(isAbsolute(target) ? target : resolve(dataDirectory, target));
    paths.push({ role: 'wal', path: walPath });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EINVAL') throw error;
  }
  return paths;
}
