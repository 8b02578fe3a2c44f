/**
 * The managed policies operators attach to restore and drill targets'
 * instance roles, one per cluster: read the cluster's repository (manifests,
 * restore records, artifacts, WAL) and answer the restore state machine, and
 * nothing else. A restore target treats what it restores as hostile (DESIGN.md,
 * "Trust"): should the restored content or the restored server take it over,
 * it holds no right to write a repository object, so it can neither forge a
 * record or a manifest nor add WAL to the cluster it was restored from. The
 * host policy (agent-host-policy.ts) is for the cluster's database hosts,
 * which write WAL; a standby restored this way gets that policy only when it
 * becomes one of them.
 */
import { Stack } from 'aws-cdk-lib';
import { ManagedPolicy, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledge, bucketFinding } from './acknowledge.ts';

export interface RestoreTargetPolicyProps {
  /** Names the policies: `pgsnap-<name>-restore-<cluster>` (`<environment>` or `<environment>-dr`). */
  name: string;
  repositories: Array<{ bucket: IBucket; prefix: string; cluster: string }>;
  /** The key of a repository bucket the stack created, and the bucket it encrypts. */
  repositoryKey?: { key: IKey; bucket: IBucket } | undefined;
}

/** The policy name of a cluster's restore targets. */
export function restoreTargetPolicyName(name: string, cluster: string): string {
  return `pgsnap-${name}-restore-${cluster}`;
}

export class RestoreTargetPolicy extends Construct {
  /** The policy of each cluster's restore targets, by cluster name. */
  readonly policies: ReadonlyMap<string, ManagedPolicy>;

  constructor(scope: Construct, id: string, props: RestoreTargetPolicyProps) {
    super(scope, id);
    const policies = new Map<string, ManagedPolicy>();
    for (const { bucket, prefix, cluster } of props.repositories) {
      const root = `${prefix}${cluster}`;
      const policy = new ManagedPolicy(this, cluster, {
        managedPolicyName: restoreTargetPolicyName(props.name, cluster),
        description: `pgsnap restore or drill target of ${cluster}: read its repository, answer the restore state machine`,
        statements: [
          // No resource-level permissions for SendTask* (see agent-host-policy.ts): the task token scopes them.
          new PolicyStatement({
            actions: ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
            resources: ['*'],
          }),
          new PolicyStatement({
            actions: ['s3:GetObject'],
            resources: [bucket.arnForObjects(`${root}/*`)],
          }),
          new PolicyStatement({
            // ListBucketVersions: a WAL fetch refuses a key with more than one version (Repository.fetchWal).
            actions: ['s3:ListBucket', 's3:ListBucketVersions'],
            resources: [bucket.bucketArn],
            conditions: { StringLike: { 's3:prefix': [`${root}/*`] } },
          }),
        ],
      });
      acknowledge(policy, {
        'AwsSolutions-IAM5[Resource::*]':
          'SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat support no resource-level permissions; the task token scopes them',
        [`AwsSolutions-IAM5[Resource::${bucketFinding(bucket)}/${root}/*]`]: `a restore target of ${cluster} reads its manifests, records, artifacts and WAL, under its prefix only, and writes nothing`,
      });
      if (props.repositoryKey && props.repositoryKey.bucket === bucket) {
        // Decrypt only, only through S3 (as the host policy; KMS cannot tell one prefix from another).
        policy.addStatements(
          new PolicyStatement({
            actions: ['kms:Decrypt'],
            resources: [props.repositoryKey.key.keyArn],
            conditions: { StringEquals: { 'kms:ViaService': `s3.${Stack.of(this).region}.amazonaws.com` } },
          }),
        );
      }
      policies.set(cluster, policy);
    }
    this.policies = policies;
  }
}
