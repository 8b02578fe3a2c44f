/**
 * Every cluster of one repository at a glance (`pgsnap backups list --all`):
 * its newest completed backup and that backup's age, how far its disaster
 * recovery copies lag behind it, and its last successful drill. All of it is
 * read from what the repository holds (cluster.json, the manifests, the
 * restore records); the RPO is not there (it is the deployment's
 * configuration, `rpoHours`), so the caller may give one to compare against.
 */
import { clusterNamePattern } from '../ids.ts';
import type { Manifest } from '../repository/manifest.ts';
import { newestBackups } from '../repository/newest.ts';
import { Repository } from '../repository/repository.ts';
import type { ObjectStore } from '../repository/store.ts';
import { copiedToDr, newestDrill } from './freshness.ts';

export interface ClusterView {
  cluster: string;
  /** The newest completed backup, and seconds since it started (its data is at least that old). */
  newest?: { backupId: string; startedAt: string; ageSeconds: number };
  /** With an RPO given: whether the newest completed backup is older than it (or there is none). */
  overRpo?: boolean;
  /**
   * DR: `not-copied` when no backup read records a DR copy; otherwise how far the DR side's newest backup
   * (every copy completed) is behind the source's newest completed one, in seconds (0: caught up), and
   * how many backups have copies still pending.
   */
  dr:
    | { state: 'not-copied' }
    | { state: 'copied'; newestInDr?: { backupId: string; ageSeconds: number }; lagSeconds?: number };
  /** The newest drill that completed, and days since it ended. */
  lastDrill?: { restoreId: string; days: number };
  /** Manifests read for this cluster (at most the limit). */
  read: number;
}

/** The cluster names of a repository: folders with a valid name that hold a cluster.json, sorted. */
export async function listClusters(store: ObjectStore): Promise<string[]> {
  const names = (await store.list('')).filter((name) => clusterNamePattern.test(name));
  const pinned = await Promise.all(names.map((name) => store.exists(`${name}/cluster.json`)));
  return names.filter((_, i) => pinned[i]);
}

const ageOf = (m: Manifest, now: number) =>
  Math.max(0, Math.round((now - Date.parse(m.timings.startedAt)) / 1000));

/** One cluster's view; reads at most `limit` manifests (newest first) and `limit` restore records. */
export async function clusterView(
  repository: Repository,
  options: { now?: Date; rpoHours?: number; limit?: number } = {},
): Promise<ClusterView> {
  const now = options.now ?? new Date();
  const limit = options.limit ?? 50;
  const completed = (m: Manifest) => m.state === 'completed';
  const hasCopies = (m: Manifest) => (m.copies?.length ?? 0) > 0;
  const { manifests, read } = await newestBackups(repository, [completed, copiedToDr, hasCopies], { limit });
  const [newest, inDr, anyCopied] = manifests;
  const drill = await newestDrill(repository, { now, limit });
  const newestAge = newest && ageOf(newest, now.getTime());
  const dr: ClusterView['dr'] = !anyCopied
    ? { state: 'not-copied' }
    : {
        state: 'copied',
        ...(inDr ? { newestInDr: { backupId: inDr.backupId, ageSeconds: ageOf(inDr, now.getTime()) } } : {}),
        ...(inDr && newest
          ? {
              lagSeconds: Math.max(
                0,
                Math.round(
                  (Date.parse(newest.timings.startedAt) - Date.parse(inDr.timings.startedAt)) / 1000,
                ),
              ),
            }
          : {}),
      };
  return {
    cluster: repository.cluster,
    ...(newest
      ? { newest: { backupId: newest.backupId, startedAt: newest.timings.startedAt, ageSeconds: newestAge! } }
      : {}),
    ...(options.rpoHours !== undefined
      ? { overRpo: newestAge === undefined || newestAge > options.rpoHours * 3600 }
      : {}),
    dr,
    ...(drill ? { lastDrill: drill } : {}),
    read,
  };
}

/** Every cluster of the repository in `store`, by name. */
export async function fleetView(
  store: ObjectStore,
  options: { now?: Date; rpoHours?: number; limit?: number } = {},
): Promise<ClusterView[]> {
  const clusters = await listClusters(store);
  const views: ClusterView[] = [];
  // One cluster at a time: a repository of hundreds would otherwise open hundreds of reads at once.
  for (const cluster of clusters) views.push(await clusterView(new Repository(store, cluster), options));
  return views;
}
