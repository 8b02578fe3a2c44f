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
} as const;

export interface BackupFreshness {
  cluster: string;
  /** The newest completed backup, and seconds since it started; absent when none was found. */
  newest?: { backupId: string; ageSeconds: number };
  /** The newest completed backup whose DR copies are all completed; absent when none was found. */
  newestInDr?: { backupId: string; ageSeconds: number };
  /** Manifests read, newest first, in one walk for both: at most `limit`. */
  read: number;
}

const copiedToDr = (m: Manifest): boolean =>
  m.state === 'completed' && (m.copies?.length ?? 0) > 0 && m.copies!.every((c) => c.state === 'completed');

/**
 * The newest completed backup, and with `withDr` the newest copied to DR,
 * in one walk reading no more than `limit` manifests: a catalog whose newest
 * such backup is further back than that has no figure, and the RPO alarm
 * speaks for it.
 */
export async function backupFreshness(
  repository: Repository,
  options: { withDr: boolean; now?: Date; limit?: number },
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
  return {
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
  ].map((d) => ({ ...d, Unit: 'Seconds', Dimensions: dimensions }));
  if (data.length === 0) return;
  await cloudwatch.send(new PutMetricDataCommand({ Namespace: options.namespace, MetricData: data }));
}
