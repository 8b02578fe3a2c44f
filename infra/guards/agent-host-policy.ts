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

/** Where one cluster's hosts write: `<prefix><cluster>/` of `bucket`, the cluster possibly a policy variable. */
export interface HostRepository {
  bucket: IBucket;
  prefix: string;
  /** A cluster name, or `${aws:PrincipalTag/pgsnap:cluster}` for a session tagged with it (discovered-hosts.ts). */
  cluster: string;
}

/**
 * The statements of a host of one cluster, or of any cluster a session's tag names: the listed clusters'
 * policies and the discovered-cluster role's are this one definition, so a right added to one is added to
 * both. `withSendTask`: the task token statements, which the discovered-host role carries itself.
 */
export function agentHostStatements(
  scope: Construct,
  { bucket, prefix, cluster }: HostRepository,
  options: { repositoryKey?: IKey | undefined; withSendTask: boolean },
): PolicyStatement[] {
  const statements = options.withSendTask ? [sendTaskStatement()] : [];
  statements.push(
    new PolicyStatement({
      actions: ['s3:GetObject', 's3:PutObject'],
      resources: [bucket.arnForObjects(`${prefix}${cluster}/*`)],
    }),
    // The orchestrator records, hosts only propose (DESIGN.md "Trust"): manifests and restore records are
    // the Lambdas' to write; a host answers begin and end through its task token instead. An explicit
    // Deny, so that no Allow elsewhere on the host's role can give the write back. For a tagged session it
    // names every cluster's, not only the tag's: no tag value can open a manifest to a host.
    new PolicyStatement({
      sid: 'HostsNeverWriteManifestsOrRestoreRecords',
      effect: Effect.DENY,
      actions: ['s3:PutObject', 's3:DeleteObject', 's3:DeleteObjectVersion'],
      resources: [
        bucket.arnForObjects(`${prefix}${cluster}/backups/*/manifest.json`),
        bucket.arnForObjects(`${prefix}${cluster}/restores/*`),
        ...(cluster.startsWith('${')
          ? [
              bucket.arnForObjects(`${prefix}*/backups/*/manifest.json`),
              bucket.arnForObjects(`${prefix}*/restores/*`),
            ]
          : []),
      ],
    }),
    new PolicyStatement({
      // ListBucketVersions: a WAL fetch refuses a key with more than one version (Repository.fetchWal).
      actions: ['s3:ListBucket', 's3:ListBucketVersions'],
      resources: [bucket.bucketArn],
      conditions: { StringLike: { 's3:prefix': [`${prefix}${cluster}/*`] } },
    }),
  );
  if (options.withSendTask) statements.push(hostMetricsStatement());
  if (options.repositoryKey) {
    // KMS cannot tell one cluster's prefix from another's: with S3 Bucket Keys S3 asks KMS with the bucket's
    // ARN as the encryption context, not the object's (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-key.html),
    // and for a bucket key it may reuse one made for another prefix. The key is usable only through S3
    // (kms:ViaService), and S3 decides which objects, by the statements above.
    statements.push(
      new PolicyStatement({
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: [options.repositoryKey.keyArn],
        conditions: {
          StringEquals: { 'kms:ViaService': `s3.${Stack.of(scope).region}.amazonaws.com` },
        },
      }),
    );
  }
  return statements;
}

/**
 * SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat support no resource-level permissions and no
 * condition keys (Service Authorization Reference, "Actions, resources, and condition keys for AWS Step
 * Functions": their resource types column is empty): only "*" matches, and a statement naming the state
 * machine grants nothing. What limits them is the token itself, which only the host a step ran on gets.
 */
export function sendTaskStatement(): PolicyStatement {
  return new PolicyStatement({
    actions: ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
    resources: ['*'],
  });
}

/**
 * Archive health (agent/metrics/). PutMetricData has no resource-level permissions; its namespace
 * condition keeps hosts out of the state machine's namespace, where a BackupCompleted would silence
 * the RPO alarm. Which cluster's dimension a host writes cannot be limited (no such condition key).
 */
export function hostMetricsStatement(): PolicyStatement {
  return new PolicyStatement({
    actions: ['cloudwatch:PutMetricData'],
    resources: ['*'],
    conditions: { StringEquals: { 'cloudwatch:namespace': hostMetrics.namespace } },
  });
}

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
    for (const repository of props.repositories) {
      const { bucket, prefix, cluster } = repository;
      const policy = new ManagedPolicy(this, cluster, {
        managedPolicyName: `pgsnap-${props.environment}-host-${cluster}`,
        description: `pgsnap agent on a host of ${cluster}: answer the backup state machine, use ${cluster}'s repository`,
        statements: agentHostStatements(this, repository, {
          repositoryKey: props.keyBucket === bucket ? props.repositoryKey : undefined,
          withSendTask: true,
        }),
      });
      acknowledge(policy, {
        'AwsSolutions-IAM5[Resource::*]':
          'SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat support no resource-level permissions; the task token scopes them. ' +
          "PutMetricData has none either; it is limited to the hosts' namespace (cloudwatch:namespace)",
        [`AwsSolutions-IAM5[Resource::${bucketFinding(bucket)}/${prefix}${cluster}/*]`]: `the agent of ${cluster} reads and writes WAL and artifacts under its own cluster's prefix, and nowhere else`,
      });
      policies.set(cluster, policy);
    }
    this.policies = policies;
  }
}
