/**
 * IAM statements scoped to the clusters' database hosts: by instance id where
 * the configuration names one, by the selecting tags otherwise, and for
 * clusters found by tags, by the discovery tag; past `namedGrantsUpTo`
 * listed clusters, any instance of the account in the Region
 * (infra/guards/fleet-grants.ts).
 */
import { Stack } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import type { ClusterConfig } from '../config/config.ts';
import { byRepository } from './fleet-grants.ts';

/**
 * Statements allowing `actions` on the clusters' instances. `tagConditionKey`
 * is the service's key for a resource tag: `aws:ResourceTag` for EC2,
 * `ssm:resourceTag` for SSM SendCommand.
 */
export function hostStatements(
  scope: Construct,
  clusters: ClusterConfig[],
  actions: string[],
  tagConditionKey: 'aws:ResourceTag' | 'ssm:resourceTag',
  /** The discovery tag (config `discover.tag`): any instance carrying it is some cluster's host. */
  discoverTag?: string,
): PolicyStatement[] {
  const stack = Stack.of(scope);
  const instanceArn = (id: string) =>
    stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: id });
  if (byRepository(clusters.length)) {
    // Past a few dozen hosts their ARNs and tags no longer fit a role's policy (infra/guards/fleet-grants.ts).
    return [new PolicyStatement({ actions, resources: [instanceArn('*')] })];
  }
  const statements: PolicyStatement[] = [];
  const ids = clusters.flatMap((c) => ('instanceId' in c.instance ? [c.instance.instanceId] : []));
  if (ids.length > 0) statements.push(new PolicyStatement({ actions, resources: ids.map(instanceArn) }));
  for (const cluster of clusters) {
    if (!('tags' in cluster.instance)) continue;
    const conditions = Object.fromEntries(
      Object.entries(cluster.instance.tags).map(([key, value]) => [`${tagConditionKey}/${key}`, value]),
    );
    statements.push(
      new PolicyStatement({
        actions,
        resources: [instanceArn('*')],
        conditions: { StringEquals: conditions },
      }),
    );
  }
  if (discoverTag) {
    // Which cluster a tagged host runs is its tag's value; prepare-backup found it by that very tag.
    statements.push(
      new PolicyStatement({
        actions,
        resources: [instanceArn('*')],
        conditions: { StringLike: { [`${tagConditionKey}/${discoverTag}`]: '?*' } },
      }),
    );
  }
  return statements;
}
