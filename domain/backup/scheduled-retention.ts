/**
 * Retention of a whole fleet from the cluster catalog (domain/catalog.ts): each
 * cluster's policy is in its catalog entry, not in a Lambda environment (4 KB,
 * about 100 clusters), and one schedule per cadence starts retention of every
 * cluster retained on that cadence (infra/retention/scheduled-retention.ts).
 *
 * Clusters found by tags get the discovery block's policy. Which of them
 * exist is read from the repository, one listing of `<discover prefix>` by
 * directory (ListObjectsV2 with a delimiter, 1,000 names a page), not from
 * the running instances: a cluster whose host was stopped, replaced or
 * untagged still has backups to thin, and a listing costs no EC2 call from
 * the token bucket that backups share.
 */
import type { Catalog, CatalogCluster } from '../catalog.ts';
import { messageOf } from '../errors.ts';
import { clusterNamePattern } from '../ids.ts';
import { parseWith } from '../parse.ts';
import { parseRepositoryUrl } from '../repository/location.ts';
import { openStore } from '../repository/open.ts';
import * as z from '../zod.ts';
import { type RetentionPolicy, retentionPolicySchema } from './retention.ts';

/**
 * A cluster's retention as its catalog entry holds it: one side's policy, and the cadence of its scheduled
 * retention. Strict: a DR policy (`dr`) here is refused, since DR retention is the DR stack's own, over its
 * own catalog.
 */
export const catalogRetentionSchema = z.strictObject({
  ...retentionPolicySchema.shape,
  /** The EventBridge Scheduler expression of its scheduled retention. */
  schedule: z.optional(z.string()),
});
export type CatalogRetention = z.output<typeof catalogRetentionSchema>;

/** What a retention schedule passes: its cadence, so that it starts the clusters retained on that cadence. */
export const retentionStartSchema = z.strictObject({ schedule: z.string().check(z.minLength(1)) });

/** One retention to run: the cluster and the repository it is retained in. */
export interface RetainedCluster {
  cluster: string;
  repository: string;
}

function parsed(raw: Record<string, unknown>, whose: string): CatalogRetention {
  return parseWith(catalogRetentionSchema, raw, `the retention of ${whose} in the cluster catalog`);
}

function policyOf(retention: CatalogRetention): RetentionPolicy {
  const { schedule: _schedule, ...policy } = retention;
  return policy;
}

/**
 * The retention policy of `name`: its catalog entry's, or, for a cluster the catalog does not list but
 * discovers by tags, the discovery block's. None: the cluster keeps everything.
 */
export function retentionPolicyOf(catalog: Catalog, name: string): RetentionPolicy | undefined {
  const listed = catalog.clusters.find((c) => c.name === name);
  if (listed) return listed.retention && policyOf(parsed(listed.retention, name));
  const defaults = catalog.discover?.defaults.retention;
  if (!defaults || !clusterNamePattern.test(name)) return undefined;
  return policyOf(parsed(defaults, `the discovered clusters (${name})`));
}

/** The names of the directories under a repository URL's prefix. */
export type ListClusters = (repository: string) => Promise<string[]>;

/** The directories under `repository` (its prefix), from the repository itself (file:// or s3://). */
export const listRepositoryClusters: ListClusters = async (repository) => {
  const store = await openStore(parseRepositoryUrl(repository));
  try {
    return await store.list('');
  } finally {
    store.close();
  }
};

/**
 * The clusters a retention schedule of cadence `schedule` retains: the listed ones with that cadence, and,
 * when the discovery block's retention has it, every cluster directory of the discovered repository that no
 * listed cluster owns.
 */
export async function retainedClusters(
  catalog: Catalog,
  schedule: string,
  listClusters: ListClusters = listRepositoryClusters,
): Promise<RetainedCluster[]> {
  const onCadence = (entry: CatalogCluster) =>
    entry.retention !== undefined && parsed(entry.retention, entry.name).schedule === schedule;
  const retained = catalog.clusters
    .filter(onCadence)
    .map((c) => ({ cluster: c.name, repository: c.repository }));
  const discover = catalog.discover;
  const defaults = discover?.defaults.retention;
  if (!discover || !defaults || parsed(defaults, 'the discovered clusters').schedule !== schedule) {
    return retained;
  }
  const listed = new Set(catalog.clusters.map((c) => c.name));
  for (const name of await listClusters(discover.repository)) {
    // `_pgsnap/` (the catalogs) and stray files are no cluster's: a cluster name starts with a letter or digit.
    if (clusterNamePattern.test(name) && !listed.has(name)) {
      retained.push({ cluster: name, repository: discover.repository });
    }
  }
  return retained;
}

/** What one delivery of a retention schedule started. */
export interface RetentionStart {
  /** The clusters whose retention was handed to Lambda. */
  started: string[];
}

/**
 * Some of a retention schedule's clusters could not be handed to their retention (the others were).
 *
 * What to do: Nothing at once: Lambda retries the schedule's delivery, and a retention run twice deletes
 * nothing twice. If it keeps failing, read the start-retention Lambda's log for each cluster's reason.
 */
export class RetentionStartError extends Error {
  override name = 'RetentionStartError';
}

/**
 * Starts retention of every cluster retained on the event's cadence, each with `invoke` (an asynchronous
 * invocation of apply-retention: it returns once Lambda has queued the event). All are tried; a failure of
 * some is thrown after, naming them.
 */
export async function startRetention(options: {
  catalog: () => Promise<Catalog>;
  event: unknown;
  invoke: (retained: RetainedCluster) => Promise<void>;
  listClusters?: ListClusters;
}): Promise<RetentionStart> {
  const { schedule } = parseWith(retentionStartSchema, options.event, 'the start-retention event');
  const clusters = await retainedClusters(await options.catalog(), schedule, options.listClusters);
  const started: string[] = [];
  const failed: string[] = [];
  for (const retained of clusters) {
    try {
      await options.invoke(retained);
      started.push(retained.cluster);
    } catch (error) {
      failed.push(`${retained.cluster}: ${messageOf(error)}`);
    }
  }
  if (failed.length > 0) {
    throw new RetentionStartError(
      `the retention of ${failed.length} of ${clusters.length} clusters on ${schedule} did not start ` +
        `(${failed.slice(0, 5).join('; ')}${failed.length > 5 ? '; …' : ''}); the others did`,
    );
  }
  return { started };
}
