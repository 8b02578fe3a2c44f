/**
 * How old the newest restorable backup of a cluster is, at the source and in
 * DR: the figure an operator looks for first, which CloudWatch cannot derive
 * from counts of completed backups. A backup counts at the source when it is
 * completed, in DR when every one of its DR copies is completed too. The age
 * runs from the backup's start (its data is at least that old).
 */
import { type CloudWatchClient, type MetricDatum, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import type { Manifest } from '../repository/manifest.ts';
import { newestBackups } from '../repository/newest.ts';
import type { Repository } from '../repository/repository.ts';

/** The metrics report-backup-age puts (namespace and dimension of the state machine's metrics). */
export const freshnessMetrics = {
  backupAge: 'NewestBackupAgeSeconds',
  drCopyAge: 'NewestDrCopyAgeSeconds',
  /**
   * Days since the newest successful drill ended: the "no drill" alarm's
   * metric, a level rather than a count of drills, so the alarm looks back one
   * period, not a week (CloudWatch's longest look back is 7 days).
   */
  daysSinceDrill: 'DaysSinceLastDrill',
} as const;

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

/** Publishes a cluster's freshness (the ages found) in `namespace`, dimensioned by its name. */
export async function publishFreshness(
  cloudwatch: CloudWatchClient,
  freshness: BackupFreshness,
  options: { namespace: string; dimension: string },
): Promise<void> {
  const dimensions = [{ Name: options.dimension, Value: freshness.cluster }];
  const data: MetricDatum[] = [
    ...(freshness.newest
      ? [{ MetricName: freshnessMetrics.backupAge, Value: freshness.newest.ageSeconds }]
      : []),
    ...(freshness.newestInDr
      ? [{ MetricName: freshnessMetrics.drCopyAge, Value: freshness.newestInDr.ageSeconds }]
      : []),
  ]
    .map((d): MetricDatum => ({ ...d, Unit: 'Seconds', Dimensions: dimensions }))
    .concat(
      freshness.newestDrill
        ? [
            {
              MetricName: freshnessMetrics.daysSinceDrill,
              Value: freshness.newestDrill.days,
              Unit: 'None',
              Dimensions: dimensions,
            },
          ]
        : [],
    );
  if (data.length === 0) return;
  await cloudwatch.send(new PutMetricDataCommand({ Namespace: options.namespace, MetricData: data }));
}

/**
 * The one DR copy-lag figure for the whole environment (no cluster
 * dimension: one metric and one alarm, whatever the fleet's size): how many
 * copied clusters' newest backup in DR is older than their DR RPO. Each
 * cluster's own lag is its NewestDrCopyAgeSeconds, on the dashboard.
 */
export const fleetFreshnessMetrics = { clustersBehindDrRpo: 'ClustersBehindDrRpo' } as const;

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
