/**
 * Lambda on a schedule (every 15 minutes): for each cluster, the age of its
 * newest completed backup and of its newest backup completed in DR, as
 * CloudWatch metrics (NewestBackupAgeSeconds, NewestDrCopyAgeSeconds: the
 * cluster's DR copy lag) for the dashboard, and for the environment how many
 * copied clusters are behind their DR RPO (ClustersBehindDrRpo, the copy-lag
 * alarm's one metric). It only reads the repositories.
 */
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { sdkRetry } from '#domain/aws-retry';
import {
  type BackupFreshness,
  backupFreshness,
  clustersBehindDrRpo,
  fleetFreshnessMetrics,
  publishFreshness,
} from '#domain/backup/freshness';
import { readCatalog } from '#domain/catalog';
import { clusterNameSchema } from '#domain/ids';
import { jsonText, parseWith } from '#domain/parse';
import { openRepository } from '#domain/repository/open';
import * as z from '#domain/zod';
import { logged, logger } from './commons/logged.ts';

const freshnessSchema = z.array(
  z.strictObject({
    name: clusterNameSchema,
    repository: z.string(),
    copiedToDr: z.boolean(),
    /** The cluster has scheduled drills: report days since the last successful one. */
    drills: z.optional(z.boolean()),
    /** Copied to DR: its DR RPO, past which its newest backup in DR counts as behind. */
    drRpoSeconds: z.optional(z.int().check(z.gte(1))),
  }),
);

const environmentSchema = z.object({
  /** The clusters: name, repository URL, and whether they are copied to DR; none: the catalog's `freshness`. */
  PGSNAP_FRESHNESS: z.optional(jsonText(freshnessSchema)),
  PGSNAP_METRICS_NAMESPACE: z.string(),
  PGSNAP_METRICS_DIMENSION: z.string(),
});

/** The handler with its CloudWatch client given. */
export const reportBackupAgeHandler =
  (cloudwatch: CloudWatchClient) =>
  async (_event: unknown): Promise<{ clusters: BackupFreshness[]; behindDrRpo: string[] }> => {
    const env = parseWith(environmentSchema, process.env, 'the report-backup-age environment');
    const freshness =
      env.PGSNAP_FRESHNESS ??
      parseWith(freshnessSchema, (await readCatalog()).freshness ?? [], "the catalog's freshness list");
    const clusters: BackupFreshness[] = [];
    const failed: string[] = [];
    // One cluster's unreachable repository does not keep the others' figures from the dashboard.
    for (const cluster of freshness) {
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
        await publishFreshness(cloudwatch, freshness, {
          namespace: env.PGSNAP_METRICS_NAMESPACE,
          dimension: env.PGSNAP_METRICS_DIMENSION,
        });
      } catch (error) {
        logger.error(`the backup age of ${cluster.name} was not reported`, error as Error);
        failed.push(`${cluster.name} (${(error as Error).name}: ${(error as Error).message})`);
      }
    }
    const drRpoSeconds = Object.fromEntries(
      freshness.filter((c) => c.copiedToDr && c.drRpoSeconds).map((c) => [c.name, c.drRpoSeconds!]),
    );
    const behindDrRpo = clustersBehindDrRpo(clusters, drRpoSeconds);
    if (Object.keys(drRpoSeconds).length > 0) {
      // Published even when some clusters were not reported: the alarm counts those it can see.
      await cloudwatch.send(
        new PutMetricDataCommand({
          Namespace: env.PGSNAP_METRICS_NAMESPACE,
          MetricData: [
            {
              MetricName: fleetFreshnessMetrics.clustersBehindDrRpo,
              Value: behindDrRpo.length,
              Unit: 'Count',
            },
          ],
        }),
      );
      if (behindDrRpo.length > 0) logger.warn(`behind their DR RPO: ${behindDrRpo.join(', ')}`);
    }
    if (failed.length > 0) throw new Error(`the backup age of ${failed.join(', ')} was not reported`);
    return { clusters, behindDrRpo };
  };

export const handler = logged('report-backup-age', reportBackupAgeHandler(new CloudWatchClient(sdkRetry)));
