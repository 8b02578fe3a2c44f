/**
 * `pgsnap discover` on this machine, against a real PostgreSQL with a
 * tablespace: every path is found and placed on the mount findmnt itself
 * names. Whether the disks are EBS depends on the machine; either way the
 * answer must be consistent with it.
 */
import { execFileSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Cluster, ownedDir } from '../support/cluster.ts';
import { pgsnap } from '../support/pgsnap.ts';

let cluster: Cluster;
let tablespaceDir: string;

beforeAll(async () => {
  cluster = await Cluster.create({ major: 15 });
  tablespaceDir = ownedDir(join(cluster.root, 'ts1'));
  await cluster.query(`CREATE TABLESPACE archive_ts LOCATION '${tablespaceDir}'`);
});
afterAll(() => cluster?.destroy());

const mountOf = (path: string) =>
  execFileSync('findmnt', ['--noheadings', '--output', 'TARGET', '--target', path], {
    encoding: 'utf8',
  }).trim();

test('discover --json places PGDATA, pg_wal and the tablespace on their mounts and says which are EBS', async () => {
  const result = await pgsnap(['discover', '--json'], cluster.env);
  const found = result.json as {
    paths: Array<{
      role: string;
      name?: string;
      path: string;
      mount: string;
      disks: Array<{ volumeId?: string }>;
    }>;
    volumes: Array<{ volumeId: string }>;
    problems: string[];
  };
  expect(found.paths.map((p) => [p.role, p.name, p.path])).toEqual([
    ['data', undefined, realpathSync(cluster.dataDir)],
    ['wal', undefined, realpathSync(join(cluster.dataDir, 'pg_wal'))],
    ['tablespace', 'archive_ts', realpathSync(tablespaceDir)],
  ]);
  for (const placement of found.paths) expect(placement.mount, placement.role).toBe(mountOf(placement.path));
  const unknown = found.paths.flatMap((p) => p.disks).filter((d) => !d.volumeId);
  if (unknown.length === 0) {
    expect(result.code, result.stderr).toBe(0);
    expect(found.problems).toEqual([]);
  } else {
    // Not EBS (or Xen): exit 3, and every part of the cluster on such a disk is named.
    expect(result.code).toBe(3);
    expect(found.problems.length).toBeGreaterThanOrEqual(unknown.length);
  }
});
