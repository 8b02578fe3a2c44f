/** A throwaway cluster with PGDATA on a btrfs volume of its own, for benchmarks that snapshot it. */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { type BtrfsVolume, BtrfsVolumes } from '../../test/support/btrfs.ts';
import { Cluster, ownedDir } from '../../test/support/cluster.ts';
import { onCleanup } from './processes.ts';

export interface BtrfsCluster {
  cluster: Cluster;
  volume: BtrfsVolume;
  /** A session on the cluster's `postgres` database, for the benchmark's own queries. */
  db: pg.Client;
}

/**
 * Makes `dir` (reachable by the server user), a btrfs volume of `volumeMb` on
 * a loop device below it, and a PostgreSQL 15 cluster whose PGDATA (pg_wal
 * inside) is on that volume; each is undone by a cleanup step, newest first.
 */
export async function clusterOnBtrfs(
  dir: string,
  { volumeMb, settings }: { volumeMb: number; settings: Record<string, string> },
): Promise<BtrfsCluster> {
  mkdirSync(dir, { mode: 0o711 });
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  // It makes its directory.
  const volumes = new BtrfsVolumes(join(dir, 'volumes'));
  onCleanup(() => volumes.destroy());
  const volume = volumes.create('pgdata', volumeMb);
  const cluster = await Cluster.create({
    major: 15,
    root: ownedDir(join(dir, 'cluster')),
    initdbAt: { dataDir: volume.subvolume },
    settings,
  });
  onCleanup(() => cluster.destroy());
  const db = await cluster.client();
  onCleanup(() => void db.end());
  return { cluster, volume, db };
}
