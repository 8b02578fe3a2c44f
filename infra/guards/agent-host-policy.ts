/**
 * The managed policies operators attach to the database hosts' instance roles
 * (next to AmazonSSMManagedInstanceCore), one per cluster: the agent answers
 * the state machine itself (SendTaskSuccess/Failure/Heartbeat) and reads and
 * writes the repository under its own cluster's prefix, and nowhere else.
 *
 * One policy per cluster, not one policy with conditions on the instance's
 * tags: S3 and KMS see the role's session, not the instance, so a tag on the
 * instance cannot be matched (aws:PrincipalTag is the role's tag, which anyone
 * who may tag the role can change), while a policy attached to exactly one
 * cluster's host role needs nothing the host could forge. A host of two
 * clusters gets both policies.
 *
 * No s3:DeleteObject: nothing the agent does on a host in normal operation
 * deletes a repository object (retention runs in the apply-retention Lambda;
 * `pgsnap retention` on a host is for file:// and local providers). Write-once
 * WAL, pin and artifacts are enforced by the bucket (RepositoryBucket.writeOnce).
 */
import { Stack } from 'aws-cdk-lib';
import { Effect, ManagedPolicy, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { hostMetrics } from '../monitoring/metrics-and-events.ts';
import { acknowledge, bucketFinding } from './acknowledge.ts';

export interface AgentHostPolicyProps {
  /** Names the policies: `pgsnap-<environment>-host-<cluster>`. */
  environment: string;
  stateMachineArn: string;
  repositories: Array<{ bucket: IBucket; prefix: string; cluster: string }>;
  /** The key of a repository bucket this stack created. */
  repositoryKey?: IKey;
  /** The bucket that key encrypts. */
  keyBucket?: IBucket;
}

export class AgentHostPolicy extends Construct {
  /** The policy of each cluster's hosts, by cluster name. */
  readonly policies: ReadonlyMap<string, ManagedPolicy>;

  constructor(scope: Construct, id: string, props: AgentHostPolicyProps) {
    super(scope, id);
    const policies = new Map<string, ManagedPolicy>();
    for (const { bucket, prefix, cluster } of props.repositories) {
      const policy = new ManagedPolicy(this, cluster, {
        managedPolicyName: `pgsnap-${props.environment}-host-${cluster}`,
        description: `pgsnap agent on a host of ${cluster}: answer the backup state machine, use ${cluster}'s repository`,
        statements: [
          // SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat support no resource-level permissions and no
          // condition keys (Service Authorization Reference, "Actions, resources, and condition keys for AWS Step
          // Functions": their resource types column is empty): only "*" matches, and a statement naming the state
          // machine grants nothing. What limits them is the token itself, which only the host a step ran on gets.
          new PolicyStatement({
            actions: ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
            resources: ['*'],
          }),
          new PolicyStatement({
            actions: ['s3:GetObject', 's3:PutObject'],
            resources: [bucket.arnForObjects(`${prefix}${cluster}/*`)],
          }),
          // The orchestrator records, hosts only propose (DESIGN.md "Trust"): manifests and restore records are
          // the Lambdas' to write; a host answers begin and end through its task token instead. An explicit
          // Deny, so that no Allow elsewhere on the host's role can give the write back.
          new PolicyStatement({
            sid: 'HostsNeverWriteManifestsOrRestoreRecords',
            effect: Effect.DENY,
            actions: ['s3:PutObject', 's3:DeleteObject', 's3:DeleteObjectVersion'],
            resources: [
              bucket.arnForObjects(`${prefix}${cluster}/backups/*/manifest.json`),
              bucket.arnForObjects(`${prefix}${cluster}/restores/*`),
            ],
          }),
          new PolicyStatement({
            // ListBucketVersions: a WAL fetch refuses a key with more than one version (Repository.fetchWal).
            actions: ['s3:ListBucket', 's3:ListBucketVersions'],
            resources: [bucket.bucketArn],
            conditions: { StringLike: { 's3:prefix': [`${prefix}${cluster}/*`] } },
          }),
          // Archive health (agent/metrics/). PutMetricData has no resource-level permissions; its namespace
          // condition keeps hosts out of the state machine's namespace, where a BackupCompleted would silence
          // the RPO alarm. Which cluster's dimension a host writes cannot be limited (no such condition key).
          new PolicyStatement({
            actions: ['cloudwatch:PutMetricData'],
            resources: ['*'],
            conditions: { StringEquals: { 'cloudwatch:namespace': hostMetrics.namespace } },
          }),
        ],
      });
      acknowledge(policy, {
        'AwsSolutions-IAM5[Resource::*]':
          'SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat support no resource-level permissions; the task token scopes them. ' +
          "PutMetricData has none either; it is limited to the hosts' namespace (cloudwatch:namespace)",
        [`AwsSolutions-IAM5[Resource::${bucketFinding(bucket)}/${prefix}${cluster}/*]`]: `the agent of ${cluster} reads and writes WAL and artifacts under its own cluster's prefix, and nowhere else`,
      });
      if (props.repositoryKey && props.keyBucket === bucket) {
        // KMS cannot tell one cluster's prefix from another's: with S3 Bucket Keys S3 asks KMS with the bucket's
        // ARN as the encryption context, not the object's (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-key.html),
        // and for a bucket key it may reuse one made for another prefix. The key is usable only through S3
        // (kms:ViaService), and S3 decides which objects, by the statements above.
        policy.addStatements(
          new PolicyStatement({
            actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
            resources: [props.repositoryKey.keyArn],
            conditions: {
              StringEquals: { 'kms:ViaService': `s3.${Stack.of(this).region}.amazonaws.com` },
            },
          }),
        );
      }
      policies.set(cluster, policy);
    }
    this.policies = policies;
  }
}
