/**
 * How the stack's Lambdas and state machines are granted the clusters they
 * serve. While the clusters are few, by name: one S3 statement per cluster's
 * prefix, the cluster tag's values listed, each listed host's instance ARN.
 * Past `namedGrantsUpTo` clusters a role naming each one passes IAM's quotas
 * (10,240 characters of inline policy per role, then CDK's overflow managed
 * policies, 10 per role: about 45 clusters), so the grants go by repository
 * instead: one statement per bucket and repository prefix (`<prefix>*\/…`),
 * any value of the cluster tag, any instance of the account in the Region
 * (SendCommand still only with pgsnap's documents, snapshots still only with
 * the cluster tag). A size that does not grow with the fleet.
 *
 * What that widens is the orchestrator's reach among the clusters of its own
 * repository, which is not a trust boundary (DESIGN.md, Trust: the
 * orchestrator records, hosts only propose): every host policy and restore
 * target policy stays per cluster, and the bucket policy's protections of
 * manifests and restore records hold whatever a role's policy says
 * (docs/security.md, "Many clusters").
 */
import type { IBucket } from 'aws-cdk-lib/aws-s3';

/** Up to this many clusters the grants name each one (clustersPerShard, when per-cluster resources move too). */
export const namedGrantsUpTo = 30;

/** Where a grant reaches: one cluster's directory, or every cluster's of one repository prefix. */
export interface GrantScope {
  bucket: IBucket;
  /** The cluster's directory, `<prefix><cluster>`, or `<prefix>*` for every cluster under the prefix. */
  root: string;
  /** For an acknowledgement's reason: `orders-db's`, or `the clusters' under pgsnap/`. */
  whose: string;
}

/** Whether grants over `count` clusters go by repository rather than by name. */
export function byRepository(count: number): boolean {
  return count > namedGrantsUpTo;
}

/** The scopes of the grants over `clusters`: one per cluster while they are few, one per bucket and prefix past that. */
export function grantScopes<C>(
  clusters: readonly C[],
  of: (cluster: C) => { name: string; bucket: IBucket; prefix: string },
): GrantScope[] {
  if (!byRepository(clusters.length)) {
    return clusters.map((cluster) => {
      const { name, bucket, prefix } = of(cluster);
      return { bucket, root: `${prefix}${name}`, whose: `${name}'s` };
    });
  }
  const scopes = new Map<IBucket, Map<string, GrantScope>>();
  for (const cluster of clusters) {
    const { bucket, prefix } = of(cluster);
    const inBucket = scopes.get(bucket) ?? new Map<string, GrantScope>();
    scopes.set(bucket, inBucket);
    if (!inBucket.has(prefix)) {
      inBucket.set(prefix, {
        bucket,
        root: `${prefix}*`,
        whose: prefix ? `the clusters' under ${prefix}` : "the clusters' at the bucket's root",
      });
    }
  }
  return [...scopes.values()].flatMap((inBucket) => [...inBucket.values()]);
}

/**
 * A condition on the cluster tag `key` (`aws:ResourceTag/pgsnap:cluster`, `aws:RequestTag/…`): one of `names`
 * while they are few, any value past that.
 */
export function clusterTagCondition(
  key: string,
  names: readonly string[],
): { StringEquals: Record<string, string[]> } | { StringLike: Record<string, string> } {
  return byRepository(names.length)
    ? { StringLike: { [key]: '?*' } }
    : { StringEquals: { [key]: [...names] } };
}

/**
 * The clusters' directories for a bucket policy's protections (write-once keys, records only the orchestrator
 * writes): each cluster's while they are few, `<prefix>*` per repository prefix past that. A bucket policy
 * holds 20 KB; a denial over every cluster of a prefix protects more, never less.
 */
export function clusterRoots(clusters: ReadonlyArray<{ name: string; prefix: string }>): string[] {
  return byRepository(clusters.length)
    ? [...new Set(clusters.map((c) => `${c.prefix}*`))]
    : clusters.map((c) => `${c.prefix}${c.name}`);
}
