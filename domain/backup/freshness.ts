/**
 * How old the newest restorable backup of a cluster is, at the source and in
 * DR: the figure an operator looks for first, which CloudWatch cannot derive
 * from counts of completed backups. A backup counts at the source when it is
 * completed, in DR when every one of its DR copies is completed too. The age
 * runs from the backup's start (its data is at least that old).
 */
import type { Manifest } from '../repository/manifest.ts';
import { newestBackups } from '../repository/newest.ts';
import type { Repository } from '../repository/repository.ts';

export interface BackupFreshness {
  cluster: string;
  /** The newest completed backup, and seconds since it started; absent when none was found. */
  newest?: { backupId: string; ageSeconds: number };
  /** The newest completed backup whose DR copies are all completed; absent when none was found. */
  newestInDr?: { backupId: string; ageSeconds: number };
  /** Manifests read, newest first, in one walk for both: at most `limit`. */
  read: number;
  /** With `drills`: the newest drill that completed, and days since it ended; absent when none was found. */
  newestDrill?: { restoreId: string; days: number };
}

/** The newest completed drill among the newest `limit` restore records, and days since it finished. */
export async function newestDrill(
  repository: Repository,
  options: { now?: Date; limit?: number } = {},
): Promise<{ restoreId: string; days: number } | undefined> {
  const now = (options.now ?? new Date()).getTime();
  // restoreIds sort by when they were asked for: the newest first, at most `limit` read.
  const ids = (await repository.listRestoreIds()).reverse().slice(0, options.limit ?? 50);
  for (const id of ids) {
    const record = await repository.readRestoreRecord(id);
    if (record?.mode !== 'drill' || record.state !== 'completed') continue;
    const ended = Date.parse(record.timings.finishedAt ?? record.updatedAt);
    return { restoreId: id, days: Math.max(0, Math.round(((now - ended) / 86_400_000) * 100) / 100) };
  }
  return undefined;
}

/** Completed, with every DR copy completed: restorable in DR. */
export const copiedToDr = (m: Manifest): boolean =>
  m.state === 'completed' && (m.copies?.length ?? 0) > 0 && m.copies!.every((c) => c.state === 'completed');

/**
 * The newest completed backup, and with `withDr` the newest copied to DR,
 * in one walk reading no more than `limit` manifests: a catalog whose newest
 * such backup is further back than that has no figure, and the RPO alarm
 * speaks for it.
 */
export async function backupFreshness(
  repository: Repository,
  options: { withDr: boolean; drills?: boolean; now?: Date; limit?: number },
): Promise<BackupFreshness> {
  const now = (options.now ?? new Date()).getTime();
  const limit = options.limit ?? 50;
  const ageOf = (m: Manifest) => ({
    backupId: m.backupId,
    ageSeconds: Math.max(0, Math.round((now - Date.parse(m.timings.startedAt)) / 1000)),
  });
  const completed = (m: Manifest) => m.state === 'completed';
  const { manifests, read } = await newestBackups(
    repository,
    options.withDr ? [completed, copiedToDr] : [completed],
    { limit },
  );
  const [atSource, inDr] = manifests;
  const drill = options.drills ? await newestDrill(repository, options) : undefined;
  return {
    ...(drill ? { newestDrill: drill } : {}),
    cluster: repository.cluster,
    ...(atSource ? { newest: ageOf(atSource) } : {}),
    ...(inDr ? { newestInDr: ageOf(inDr) } : {}),
    read,
  };
}

/**
 * The fleet counts report-backup-age publishes every 15 minutes, without the
 * Cluster dimension: one custom metric and one alarm each, whatever the
 * fleet's size (a metric with a Cluster dimension is a metric per cluster,
 * $0.30 a month each, and its alarm $0.10 more). Which clusters a count holds
 * is in report-backup-age's log line of the same run (`counted`), and each
 * cluster's figures in its `freshness` line (the dashboard's Logs Insights
 * widgets read them).
 */
export const fleetFreshnessMetrics = {
  /** Copied clusters whose newest backup in DR is older than their DR RPO. */
  clustersBehindDrRpo: 'ClustersBehindDrRpo',
  /** Clusters whose newest completed backup is older than their RPO (rpoHours), or that have none. */
  clustersOverRpo: 'ClustersOverRpo',
  /** Clusters with no completed backup at all among their newest manifests. */
  clustersWithoutBackup: 'ClustersWithoutBackup',
  /** Clusters with scheduled drills and no successful drill in their `drills.days`. */
  clustersWithoutRecentDrill: 'ClustersWithoutRecentDrill',
  /** Clusters whose host should publish archive health and published none in the last 15 minutes. */
  clustersWithoutArchiveHealth: 'ClustersWithoutArchiveHealth',
} as const;

/** What report-backup-age knows of a cluster's objectives, from the deployment. */
export interface FreshnessObjectives {
  cluster: string;
  /** No completed backup for longer than this is over the RPO. */
  rpoSeconds?: number;
  /** With scheduled drills: no successful drill for more days than this is counted. */
  drillDays?: number;
  /** Copied to DR: its DR RPO. */
  drRpoSeconds?: number;
  /** Its host runs the agent service and publishes archive health. */
  watchArchiving?: boolean;
}

/** The clusters each fleet count holds, by metric name (the count is the list's length). */
export type FleetCounts = Record<
  (typeof fleetFreshnessMetrics)[keyof typeof fleetFreshnessMetrics],
  string[]
>;

/**
 * The fleet counts from what one run found (`found`, the clusters whose
 * repository could be read) and which clusters' hosts published archive
 * health recently (`withArchiveHealth`). A cluster whose repository could not
 * be read is in no backup count: the run fails naming it (the reporter's
 * Errors), and its last counts stay.
 */
export function fleetCounts(
  objectives: FreshnessObjectives[],
  found: BackupFreshness[],
  withArchiveHealth: ReadonlySet<string>,
): FleetCounts {
  const byName = new Map(found.map((f) => [f.cluster, f]));
  const counts: FleetCounts = {
    ClustersBehindDrRpo: clustersBehindDrRpo(
      found,
      Object.fromEntries(
        objectives.filter((o) => o.drRpoSeconds !== undefined).map((o) => [o.cluster, o.drRpoSeconds!]),
      ),
    ),
    ClustersOverRpo: [],
    ClustersWithoutBackup: [],
    ClustersWithoutRecentDrill: [],
    ClustersWithoutArchiveHealth: [],
  };
  for (const o of objectives) {
    if (o.watchArchiving && !withArchiveHealth.has(o.cluster))
      counts.ClustersWithoutArchiveHealth.push(o.cluster);
    const f = byName.get(o.cluster);
    if (!f) continue;
    if (!f.newest) counts.ClustersWithoutBackup.push(o.cluster);
    if (o.rpoSeconds !== undefined && (!f.newest || f.newest.ageSeconds > o.rpoSeconds)) {
      counts.ClustersOverRpo.push(o.cluster);
    }
    if (o.drillDays !== undefined && (!f.newestDrill || f.newestDrill.days > o.drillDays)) {
      counts.ClustersWithoutRecentDrill.push(o.cluster);
    }
  }
  return counts;
}

/**
 * The copied clusters behind their DR RPO (`drRpoSeconds` by cluster name):
 * the newest backup in DR older than it, or none in DR while the newest
 * completed backup at the source is already older than it.
 */
export function clustersBehindDrRpo(
  found: BackupFreshness[],
  drRpoSeconds: Record<string, number>,
): string[] {
  return found
    .filter((f) => {
      const rpo = drRpoSeconds[f.cluster];
      if (rpo === undefined) return false;
      const age = f.newestInDr?.ageSeconds ?? f.newest?.ageSeconds;
      return age !== undefined && age > rpo;
    })
    .map((f) => f.cluster);
}
