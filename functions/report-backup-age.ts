/**
 * Lambda on a schedule (every 15 minutes): for each cluster, the age of its
 * newest completed backup, of its newest backup completed in DR and days
 * since its last drill, as one JSON log line per cluster (`freshness`: the
 * dashboard's Logs Insights widgets read them), and for the environment the
 * fleet counts (domain/backup/freshness.ts `fleetFreshnessMetrics`): clusters
 * over their RPO, without a backup, without a recent drill, behind their DR
 * RPO, and whose host published no archive health; one metric each without
 * a cluster dimension, one alarm each, and a log line naming the clusters a
 * count holds. It only reads the repositories and the hosts' archive lag.
 * Which clusters, and their objectives, are the catalog's `freshness`
 * (PGSNAP_CATALOG): the environment carries only the catalog's location.
 * Clusters found by tags (the catalog's `discover`) are counted too, judged by
 * `freshness.discovered`: every running instance carrying the discovery tag,
 * found by one filtered DescribeInstances a run as start-fleet finds them, so
 * a tagged host that was never backed up is in ClustersWithoutBackup.
 */
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { EC2Client } from '@aws-sdk/client-ec2';
import { sdkRetry } from '#domain/aws-retry';
import { taggedClusters } from '#domain/backup/fleet';
import {
  type BackupFreshness,
  backupFreshness,
  type FleetCounts,
  fleetCounts,
} from '#domain/backup/freshness';
import { type Catalog, readCatalog } from '#domain/catalog';
import { clustersWithArchiveHealth } from '#domain/host-metrics';
import { clusterNamePattern, clusterNameSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import { openRepository } from '#domain/repository/open';
import * as z from '#domain/zod';
import { logged, logger } from './commons/logged.ts';

const objectivesSchema = z.strictObject({
  /** Its RPO, past which its newest completed backup counts in ClustersOverRpo. */
  rpoSeconds: z.optional(z.int().check(z.gte(1))),
  /** With drills: more days than this without a successful one is counted in ClustersWithoutRecentDrill. */
  drillDays: z.optional(z.int().check(z.gte(1))),
  /** Its host publishes archive health: none in the last 15 minutes counts in ClustersWithoutArchiveHealth. */
  watchArchiving: z.optional(z.boolean()),
});

/** The catalog's `freshness` (infra/monitoring/backup-age.ts `freshnessOf`): what to check of each cluster. */
const freshnessSchema = z.strictObject({
  /** The objectives of a cluster that does not give its own (what most clusters share). */
  defaults: objectivesSchema,
  /** Those of every cluster found by tags (the catalog's `discover`); none: they are not counted. */
  discovered: z.optional(objectivesSchema),
  clusters: z.array(
    z.strictObject({
      ...objectivesSchema.shape,
      name: clusterNameSchema,
      repository: z.string(),
      copiedToDr: z.boolean(),
      /** The cluster has scheduled drills: report days since the last successful one. */
      drills: z.optional(z.boolean()),
      /** Copied to DR: its DR RPO, past which its newest backup in DR counts as behind. */
      drRpoSeconds: z.optional(z.int().check(z.gte(1))),
    }),
  ),
});

const environmentSchema = z.object({
  PGSNAP_METRICS_NAMESPACE: z.string(),
});

type Counted = z.output<typeof freshnessSchema>['clusters'][number];

/**
 * The clusters found by tags that the catalog does not list, each with `objectives` and the discovered
 * repository. One paginated DescribeInstances for the whole fleet (domain/backup/fleet.ts taggedClusters),
 * filtered as EC2's DescribeInstances reference defines its filters: "tag-key - The key of a tag assigned
 * to the resource. Use this filter to find all resources that have a tag with a specific key, regardless
 * of the tag value." and "instance-state-name - The state of the instance (pending | running |
 * shutting-down | terminated | stopping | stopped)." A stopped host is not counted: it is not backed up
 * either (start-fleet finds the same instances).
 */
async function discoveredClusters(
  ec2: EC2Client,
  catalog: Catalog,
  objectives: z.output<typeof objectivesSchema>,
  counted: Counted[],
): Promise<Counted[]> {
  const discover = catalog.discover;
  if (!discover) return [];
  // A listed cluster whose host carries the tag too is counted once, by its own objectives.
  const listed = new Set([...catalog.clusters, ...counted].map((c) => c.name));
  const found: Counted[] = [];
  for (const [name, instances] of await taggedClusters(ec2, discover.tag)) {
    if (!clusterNamePattern.test(name)) {
      logger.warn(
        `instances ${instances.join(', ')} carry ${discover.tag}=${JSON.stringify(name)}, no cluster name`,
      );
    } else if (!listed.has(name)) {
      found.push({ ...objectives, name, repository: discover.repository, copiedToDr: false });
    }
  }
  return found.sort((a, b) => a.name.localeCompare(b.name));
}

/** The handler with its CloudWatch client given (and its EC2 client, to find the clusters found by tags). */
export const reportBackupAgeHandler =
  (cloudwatch: CloudWatchClient, ec2: EC2Client = new EC2Client(sdkRetry)) =>
  async (_event: unknown): Promise<{ clusters: BackupFreshness[]; counts: FleetCounts }> => {
    const env = parseWith(environmentSchema, process.env, 'the report-backup-age environment');
    // The list is in the catalog, not the environment: a fleet's passes Lambda's 4 KB at about 30 clusters.
    const catalog = await readCatalog();
    const freshness = parseWith(
      freshnessSchema,
      catalog.freshness ?? { defaults: {}, clusters: [] },
      `the freshness list of the catalog ${process.env.PGSNAP_CATALOG}`,
    );
    const listed = freshness.clusters.map((c) => ({ ...freshness.defaults, ...c }));
    const all: Counted[] = [
      ...listed,
      ...(freshness.discovered ? await discoveredClusters(ec2, catalog, freshness.discovered, listed) : []),
    ];
    const clusters: BackupFreshness[] = [];
    const failed: string[] = [];
    // One cluster's unreachable repository does not keep the others out of the counts.
    for (const cluster of all) {
      try {
        const repository = await openRepository(cluster.repository, cluster.name);
        let freshness: BackupFreshness;
        try {
          freshness = await backupFreshness(repository, {
            withDr: cluster.copiedToDr,
            drills: cluster.drills ?? false,
          });
        } finally {
          repository.close();
        }
        clusters.push(freshness);
        logger.info('freshness', {
          cluster: freshness.cluster,
          backupAgeSeconds: freshness.newest?.ageSeconds,
          drCopyAgeSeconds: freshness.newestInDr?.ageSeconds,
          daysSinceDrill: freshness.newestDrill?.days,
        });
      } catch (error) {
        logger.error(`the backup age of ${cluster.name} was not reported`, error as Error);
        failed.push(`${cluster.name} (${(error as Error).name}: ${(error as Error).message})`);
      }
    }
    const watched = all.filter((c) => c.watchArchiving).map((c) => c.name);
    const alive =
      watched.length > 0 ? await clustersWithArchiveHealth(cloudwatch, watched) : new Set<string>();
    const counts = fleetCounts(
      all.map((c) => ({
        cluster: c.name,
        ...(c.rpoSeconds ? { rpoSeconds: c.rpoSeconds } : {}),
        ...(c.drills && c.drillDays ? { drillDays: c.drillDays } : {}),
        ...(c.copiedToDr && c.drRpoSeconds ? { drRpoSeconds: c.drRpoSeconds } : {}),
        ...(c.watchArchiving ? { watchArchiving: true } : {}),
      })),
      clusters,
      alive,
    );
    // A count is published only where some cluster can be in it, so the alarms made for it see a datum.
    const applies: Record<keyof FleetCounts, boolean> = {
      ClustersBehindDrRpo: all.some((c) => c.copiedToDr && c.drRpoSeconds),
      ClustersOverRpo: all.some((c) => c.rpoSeconds),
      ClustersWithoutBackup: all.some((c) => c.rpoSeconds),
      ClustersWithoutRecentDrill: all.some((c) => c.drills && c.drillDays),
      ClustersWithoutArchiveHealth: watched.length > 0,
    };
    const published = (Object.keys(counts) as Array<keyof FleetCounts>).filter((name) => applies[name]);
    if (published.length > 0) {
      // Published even when some clusters were not reported: the alarms count those the run could see.
      await cloudwatch.send(
        new PutMetricDataCommand({
          Namespace: env.PGSNAP_METRICS_NAMESPACE,
          MetricData: published.map((name) => ({
            MetricName: name,
            Value: counts[name].length,
            Unit: 'Count',
          })),
        }),
      );
    }
    // The line an alarm's description points at: which clusters each count holds.
    const named = Object.fromEntries(
      published.filter((n) => counts[n].length > 0).map((n) => [n, counts[n]]),
    );
    if (Object.keys(named).length > 0) logger.warn('counted', { counted: named });
    if (failed.length > 0) throw new Error(`the backup age of ${failed.join(', ')} was not reported`);
    return { clusters, counts };
  };

export const handler = logged(
  'report-backup-age',
  reportBackupAgeHandler(new CloudWatchClient(sdkRetry), new EC2Client(sdkRetry)),
);
