/**
 * Where the resources that must stay per cluster go (its host policy, its
 * restore target policy, its alarms, its drill kit and drill schedule): in the
 * stack itself while the clusters are few, and in nested stacks of
 * `clustersPerShard` clusters each once they are more, so that no template
 * passes CloudFormation's quotas (500 resources per stack, a nested stack
 * counting as one in its parent; 1 MB per template read from S3). About 13
 * resources per cluster at most (2 policies, 5 alarms, a drill kit of 4, a
 * drill schedule and its alarm) keep a shard under 400.
 *
 * A shard holds the clusters in the order the configuration lists them, so a
 * cluster added at the end moves no other cluster's resources. Passing the
 * threshold moves every cluster's resources into shards (new logical ids:
 * docs/configuration.md, "Upgrading").
 */
import { NestedStack } from 'aws-cdk-lib';
import type { Construct } from 'constructs';

export const clustersPerShard = 30;

export class ClusterShards {
  /** Each shard's scope and its clusters' names; one shard, the parent itself, while there are few. */
  readonly shards: ReadonlyArray<{ scope: Construct; clusters: string[] }>;
  private readonly scopes = new Map<string, Construct>();

  constructor(parent: Construct, clusters: readonly string[], perShard = clustersPerShard) {
    if (clusters.length <= perShard) {
      this.shards = [{ scope: parent, clusters: [...clusters] }];
    } else {
      const shards: Array<{ scope: Construct; clusters: string[] }> = [];
      for (let first = 0; first < clusters.length; first += perShard) {
        const index = shards.length;
        shards.push({
          scope: new NestedStack(parent, `Shard${index}`, {
            description: `pgsnap per-cluster resources, clusters ${first + 1} to ${Math.min(first + perShard, clusters.length)}`,
          }),
          clusters: clusters.slice(first, first + perShard),
        });
      }
      this.shards = shards;
    }
    for (const shard of this.shards)
      for (const cluster of shard.clusters) this.scopes.set(cluster, shard.scope);
  }

  /** Whether the clusters' resources are in nested stacks. */
  get sharded(): boolean {
    return this.shards.length > 1;
  }

  /** The scope of a cluster's own resources: its shard's, or `unsharded` (their construct) while there are few. */
  scopeOf(cluster: string, unsharded: Construct): Construct {
    if (!this.sharded) return unsharded;
    const scope = this.scopes.get(cluster);
    if (!scope) throw new Error(`${cluster} is not a configured cluster`);
    return scope;
  }
}
