/**
 * S3 replication of each copied cluster's WAL from the source repository
 * bucket into the DR bucket, where the DR account owns the replicas and its
 * key encrypts them. Only `<prefix><cluster>/wal/` is replicated: the
 * artifacts and the DR-side manifest are written by the copy step, whose
 * manifest names the DR snapshot copies and must not be overwritten by the
 * source's. Deletes are not replicated (a compromised source cannot empty DR):
 * the DR repository has its own retention.
 */
import { Stack } from 'aws-cdk-lib';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { Bucket, CfnBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledge, arnReference } from '../guards/acknowledge.ts';
import { clusterRoots } from '../guards/fleet-grants.ts';
import type { DrNames } from './dr-config.ts';

export interface WalReplicationProps {
  /** The source repository bucket (created by the stack: an imported bucket is configured by its owner). */
  bucket: Bucket;
  key: IKey;
  names: DrNames;
  crossAccount: boolean;
  /** The copied clusters: each one's WAL, `<prefix><cluster>/wal/`, is replicated. */
  clusters: Array<{ name: string; prefix: string }>;
}

export class WalReplication extends Construct {
  readonly role: Role;

  constructor(scope: Construct, id: string, props: WalReplicationProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const { names } = props;
    const walPrefixes = props.clusters.map((c) => `${c.prefix}${c.name}/wal/`);
    // The role's objects: each cluster's WAL while they are few, by repository prefix past that (a replication
    // rule filters by a plain prefix, so the rules stay one per cluster: at most 1,000 per bucket).
    const walObjects = clusterRoots(props.clusters).map((root) => `${root}/wal/*`);
    const drBucketArn = `arn:${stack.partition}:s3:::${names.bucketName}`;
    const drKeyArn = `arn:${stack.partition}:kms:${names.region}:${names.account}:${names.keyAlias}`;
    this.role = new Role(this, 'Role', {
      roleName: names.replicationRoleName,
      description: 'pgsnap: replicates the WAL of copied clusters into the DR bucket',
      assumedBy: new ServicePrincipal('s3.amazonaws.com'),
    });
    this.role.addToPolicy(
      new PolicyStatement({
        actions: ['s3:GetReplicationConfiguration', 's3:ListBucket'],
        resources: [props.bucket.bucketArn],
      }),
    );
    this.role.addToPolicy(
      new PolicyStatement({
        actions: [
          's3:GetObjectVersionForReplication',
          's3:GetObjectVersionAcl',
          's3:GetObjectVersionTagging',
        ],
        resources: walObjects.map((objects) => props.bucket.arnForObjects(objects)),
      }),
    );
    this.role.addToPolicy(
      new PolicyStatement({
        actions: ['s3:ReplicateObject', 's3:ReplicateTags', 's3:ObjectOwnerOverrideToBucketOwner'],
        resources: walObjects.map((objects) => `${drBucketArn}/${objects}`),
      }),
    );
    props.key.grantDecrypt(this.role);
    this.role.addToPolicy(
      new PolicyStatement({
        actions: ['kms:Encrypt', 'kms:GenerateDataKey'],
        resources: [`arn:${stack.partition}:kms:${names.region}:${names.account}:key/*`],
        conditions: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': names.keyAlias } },
      }),
    );

    const cfn = props.bucket.node.defaultChild as CfnBucket;
    cfn.replicationConfiguration = {
      role: this.role.roleArn,
      rules: walPrefixes.map((prefix, index) => ({
        id: `wal-${index}`,
        status: 'Enabled',
        priority: index,
        filter: { prefix },
        deleteMarkerReplication: { status: 'Disabled' },
        sourceSelectionCriteria: { sseKmsEncryptedObjects: { status: 'Enabled' } },
        destination: {
          bucket: drBucketArn,
          encryptionConfiguration: { replicaKmsKeyId: drKeyArn },
          ...(props.crossAccount
            ? { account: names.account, accessControlTranslation: { owner: 'Destination' } }
            : {}),
        },
      })),
    };
    acknowledge(this.role, {
      ...Object.fromEntries(
        walObjects.map((objects) => [
          `AwsSolutions-IAM5[Resource::${arnReference(props.bucket)}/${objects}]`,
          'replication reads every version of the copied clusters’ WAL objects only',
        ]),
      ),
      ...Object.fromEntries(
        walObjects.map((objects) => [
          `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::${names.bucketName}/${objects}]`,
          'replicas are written under the copied clusters’ WAL prefixes of the DR bucket only',
        ]),
      ),
      [`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:kms:${names.region}:${names.account}:key/*]`]:
        'the DR key is known by its alias only (another stack, maybe another account); kms:ResourceAliases limits it',
      'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]': 'CDK decrypt grant on the source repository key',
      'AwsSolutions-IAM5[Action::kms:ReEncrypt*]': 'CDK decrypt grant on the source repository key',
    });
  }
}
