/**
 * The stack for the disaster-recovery account and region (`pgsnap-<name>-dr`):
 * the DR bucket (same layout as the source repository, optionally under S3
 * Object Lock), the DR key that encrypts the bucket and the snapshot copies,
 * and, when the DR account is another account, the role the source assumes
 * to copy there. Deploy it before the source stack: it names the source's
 * roles by ARN in conditions, which need not exist yet, while the source's
 * WAL replication needs the DR bucket.
 */
import { Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import {
  AccountPrincipal,
  AnyPrincipal,
  ArnPrincipal,
  Effect,
  PolicyDocument,
  PolicyStatement,
  Role,
} from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { type Bucket, ObjectOwnership } from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { proposedManifestName } from '#domain/ebs/dr-copies';
import { grantOperations } from '#domain/ebs/dr-sharing';
import { snapshotTags } from '#domain/ebs/snapshots';
import { ClusterCatalog, catalogClusters } from './config/cluster-catalog.ts';
import type { EnvironmentConfig } from './config/config.ts';
import { DrAlarms } from './dr/dr-alarms.ts';
import { type DrConfig, type DrNames, drNames, isCrossAccountDr } from './dr/dr-config.ts';
import { drDrillAge, drDrillAgeClusters } from './dr/dr-drills.ts';
import { DrRecorder } from './dr/dr-recorder.ts';
import { acknowledge } from './guards/acknowledge.ts';
import { clusterRoots, clusterTagCondition, grantScopes } from './guards/fleet-grants.ts';
import {
  recordKeys,
  recordsWrittenOnlyBy,
  repositoryBucketIn,
  writeOnceIn,
  writeOnceKeys,
} from './guards/repository-bucket.ts';
import { RestoreTargetPolicy } from './guards/restore-target-policy.ts';
import { lambdaRolesOf } from './lambda/handler-function.ts';
import { freshnessOf } from './monitoring/backup-age.ts';
import { outputs } from './outputs.ts';
import { Restore } from './restore/restore-in-aws.ts';
import { catalogRetention, Retention } from './retention/scheduled-retention.ts';

export interface DrStackProps extends StackProps {
  environment: EnvironmentConfig;
}

/**
 * What the DR role (and EBS on its behalf) may do with the source snapshots' keys: exactly what the
 * copier's grant gives it (dr-copies), so that the grant and this policy cannot drift apart.
 */
const sourceKeyActions = grantOperations.map((operation) => `kms:${operation}`);

export class DrStack extends Stack {
  readonly names: DrNames;
  readonly bucket: Bucket;
  readonly key: Key;
  readonly role: Role | undefined;
  readonly restore: Restore;
  /** What restore and drill targets in DR hold: read the DR bucket, answer the DR restore. */
  readonly restoreTargetPolicy: RestoreTargetPolicy;
  /** The DR topic and the DR alarms' actions. */
  readonly alarms: DrAlarms;
  /** DR retention; none when no copied cluster has a retention policy. */
  readonly retention: Retention | undefined;

  constructor(scope: Construct, id: string, props: DrStackProps) {
    const { environment, ...stackProps } = props;
    const dr = environment.dr;
    if (!dr) throw new Error(`environment ${environment.name} has no dr configuration`);
    const names = drNames(environment, dr);
    super(scope, id, {
      description: `pgsnap disaster-recovery copies of ${environment.name}`,
      env: { account: names.account, region: names.region },
      ...stackProps,
    });
    this.names = names;
    const sourceAccount = environment.account ?? names.account;
    const sourceRegion = environment.region ?? '*';
    const sourceRole = (name: string) => `arn:${this.partition}:iam::${sourceAccount}:role/${name}`;
    const crossAccount = isCrossAccountDr(environment, dr);
    const clusters = environment.clusters.filter((c) => c.copyToDr);
    const clusterNames = clusters.map((c) => c.name);

    this.key = new Key(this, 'Key', {
      alias: names.keyAlias,
      description: `pgsnap ${environment.name} DR: the DR bucket and the snapshot copies`,
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // WAL replication writes into the DR bucket as the source's replication role: it may encrypt, nothing more.
    this.key.addToResourcePolicy(
      new PolicyStatement({
        sid: 'SourceWalReplicationEncrypts',
        principals: [new AccountPrincipal(sourceAccount)],
        actions: ['kms:Encrypt', 'kms:GenerateDataKey'],
        resources: ['*'],
        conditions: {
          ArnEquals: { 'aws:PrincipalArn': sourceRole(names.replicationRoleName) },
          StringEquals: { 'kms:ViaService': `s3.${names.region}.amazonaws.com` },
        },
      }),
    );
    if (!crossAccount) {
      // The same account copies with the copier's own credentials: it encrypts the copies through EBS and
      // the DR objects through S3, and reads them back.
      this.key.addToResourcePolicy(
        new PolicyStatement({
          sid: 'SourceCopierUsesTheKeyThroughEbsAndS3',
          principals: [new AccountPrincipal(sourceAccount)],
          actions: [
            'kms:Encrypt',
            'kms:Decrypt',
            'kms:ReEncrypt*',
            'kms:GenerateDataKey*',
            'kms:DescribeKey',
            'kms:CreateGrant',
          ],
          resources: ['*'],
          conditions: {
            ArnEquals: { 'aws:PrincipalArn': sourceRole(names.copierRoleName) },
            StringEquals: {
              'kms:ViaService': [`ec2.${names.region}.amazonaws.com`, `s3.${names.region}.amazonaws.com`],
            },
          },
        }),
      );
    }

    this.bucket = repositoryBucketIn(this, {
      key: this.key,
      bucketName: names.bucketName,
      accessLogsPrefix: 'dr/',
      // Replicated objects belong to the DR account, whoever wrote them.
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      ...(dr.objectLock ? { objectLock: dr.objectLock } : {}),
      // Versions stay past the lock, and a month more.
      noncurrentVersionDays: (dr.objectLock?.days ?? 0) + 30,
    });
    const walObjects = clusterRoots(clusters.map((c) => ({ name: c.name, prefix: c.repository.prefix }))).map(
      (root) => this.bucket.arnForObjects(`${root}/wal/*`),
    );
    if (walObjects.length > 0) {
      this.bucket.addToResourcePolicy(
        new PolicyStatement({
          sid: 'SourceWalReplication',
          principals: [new ArnPrincipal(sourceRole(names.replicationRoleName))],
          actions: [
            's3:ReplicateObject',
            's3:ReplicateDelete',
            's3:ReplicateTags',
            's3:ObjectOwnerOverrideToBucketOwner',
          ],
          resources: walObjects,
        }),
      );
      this.bucket.addToResourcePolicy(
        new PolicyStatement({
          sid: 'SourceWalReplicationChecksVersioning',
          principals: [new ArnPrincipal(sourceRole(names.replicationRoleName))],
          actions: ['s3:GetBucketVersioning'],
          resources: [this.bucket.bucketArn],
        }),
      );
    }
    // Whatever any policy in either account says: the source's principals (the replication role, the
    // copier, and the role the copier assumes here) can never delete an object, switch off versioning,
    // expire versions, change this policy or Object Lock, or delete old versions. Deleting what DR no
    // longer keeps is DR retention's, a role of this stack (below).
    const sourcePrincipals = [
      sourceRole(names.replicationRoleName),
      sourceRole(names.copierRoleName),
      ...(crossAccount ? [`arn:${this.partition}:iam::${names.account}:role/${names.roleName}`] : []),
    ];
    this.bucket.addToResourcePolicy(
      new PolicyStatement({
        sid: 'SourcePrincipalsCannotUndoTheHistory',
        effect: Effect.DENY,
        principals: [new AnyPrincipal()],
        actions: [
          's3:DeleteObject',
          's3:PutBucketVersioning',
          's3:PutLifecycleConfiguration',
          's3:PutBucketPolicy',
          's3:DeleteBucketPolicy',
          's3:PutBucketObjectLockConfiguration',
          's3:PutReplicationConfiguration',
          's3:DeleteObjectVersion',
          's3:PutObjectRetention',
          's3:BypassGovernanceRetention',
        ],
        resources: [this.bucket.bucketArn, this.bucket.arnForObjects('*')],
        conditions: { ArnLike: { 'aws:PrincipalArn': sourcePrincipals } },
      }),
    );
    // As at the source: the pin, the WAL and the artifacts never change once written, whoever writes them
    // (replication writes WAL with s3:ReplicateObject, and a source overwrite is refused at the source);
    // nor does what the source proposes as a backup's manifest (dr-recorder.ts).
    // By repository prefix past a few dozen clusters: a bucket policy holds 20 KB (guards/fleet-grants.ts).
    const roots = clusterRoots(clusters.map((c) => ({ name: c.name, prefix: c.repository.prefix })));
    writeOnceIn(
      this.bucket,
      roots.flatMap((root) => [...writeOnceKeys(root), `${root}/backups/*/${proposedManifestName}`]),
    );
    // DR owns DR: the WAL arrives only by replication, and the restore records are written by this stack's
    // restore Lambdas alone. No source principal writes either, whatever its own policies say.
    if (clusters.length > 0) {
      this.bucket.addToResourcePolicy(
        new PolicyStatement({
          sid: 'SourcePrincipalsWriteNoWalAndNoRestoreRecord',
          effect: Effect.DENY,
          principals: [new AnyPrincipal()],
          actions: ['s3:PutObject', 's3:ReplicateObject', 's3:PutObjectTagging', 's3:PutObjectAcl'],
          resources: clusterRoots(clusters.map((c) => ({ name: c.name, prefix: c.repository.prefix }))).map(
            (root) => this.bucket.arnForObjects(`${root}/restores/*`),
          ),
          conditions: { ArnLike: { 'aws:PrincipalArn': sourcePrincipals } },
        }),
      );
      this.bucket.addToResourcePolicy(
        new PolicyStatement({
          sid: 'SourceCopierWritesNoWal',
          effect: Effect.DENY,
          principals: [new AnyPrincipal()],
          actions: ['s3:PutObject'],
          resources: walObjects,
          conditions: { ArnLike: { 'aws:PrincipalArn': sourcePrincipals } },
        }),
      );
    }

    this.restoreTargetPolicy = new RestoreTargetPolicy(this, 'RestoreTargetPolicy', {
      name: `${environment.name}-dr`,
      repositories: clusters.map((cluster) => ({
        bucket: this.bucket,
        prefix: cluster.repository.prefix,
        cluster: cluster.name,
      })),
      repositoryKey: { key: this.key, bucket: this.bucket },
    });

    this.alarms = new DrAlarms(this, 'Alarms', {
      environment: environment.name,
      emails: environment.notifications.emails,
    });
    // Restoring in the DR region from the DR copies, with this account's rights alone; DR drills of every
    // copied cluster when dr.drills says where (infra/dr/dr-drills.ts).
    // The DR restore's catalog: the copied clusters, each at its prefix in the DR bucket.
    // With DR drills, it holds what their age reporter checks too.
    const drills = dr.drills && { names, bucket: this.bucket, clusters, days: dr.drills.days };
    const catalog = new ClusterCatalog(this, 'Catalog', {
      bucket: this.bucket,
      clusters: catalogClusters(clusters, (c) => `s3://${this.bucket.bucketName}/${c.repository.prefix}`).map(
        (entry, i) => {
          const retention = clusters[i]!.retention;
          return retention ? { ...entry, retention: catalogRetention(retention, 'DR') } : entry;
        },
      ),
      ...(drills ? { freshness: freshnessOf(drDrillAgeClusters(drills)) } : {}),
    });
    this.restore = new Restore(this, 'Restore', {
      catalog,
      stateMachineName: `pgsnap-${environment.name}-dr-restore`,
      clusters: clusters.map((cluster) => ({
        name: cluster.name,
        bucket: this.bucket,
        prefix: cluster.repository.prefix,
        recoveryHours: cluster.recoveryHours,
        drills: dr.drills,
      })),
      timeouts: environment.timeouts,
      environment: `${environment.name}-dr`,
      topic: this.alarms.topic,
      targetPolicies: this.restoreTargetPolicy.policies,
    });
    this.alarms.restoreFailed(this.restore.stateMachine.stateMachine);
    if (drills) drDrillAge(this, { ...drills, catalog, topic: this.alarms.topic });
    outputs(this, {
      DrRepositoryBucket: [this.bucket.bucketName, 'The DR repository bucket'],
      DrRestoreStateMachineArn: [
        this.restore.stateMachine.stateMachine.stateMachineArn,
        'PGSNAP_RESTORE_STATE_MACHINE_ARN for a restore in DR',
      ],
      DrRestoreDocumentName: [
        this.restore.document.documentName,
        'The SSM document a DR restore runs on its target',
      ],
      DrAlarmTopicArn: [this.alarms.topic.topicArn, 'Where the DR alarms notify (subscribe here)'],
    });

    // DR retention, in this account alone: the cluster's DR policy (its source policy when it has none)
    // over the DR repository and the DR copies in this region. It is the only one that deletes in DR.
    const retained = clusters.filter((c) => c.retention);
    if (retained.length > 0) {
      this.retention = new Retention(this, 'Retention', {
        side: 'DR',
        catalog,
        clusters: retained.map((c) => ({
          name: c.name,
          schedule: c.retention!.schedule,
          flexibleWindowMinutes: c.retention!.flexibleWindowMinutes,
          bucket: this.bucket,
          prefix: c.repository.prefix,
        })),
      });
      this.alarms.notify(this.retention.failedAlarm);
    }

    // DR owns DR: its manifests are recorded here, from the copies this account sees, and only this stack's
    // Lambdas (the recorder, DR retention, the DR restore) write manifests and restore records in its bucket.
    if (clusters.length > 0) {
      new DrRecorder(this, 'Recorder', {
        bucket: this.bucket,
        clusters: clusters.map((c) => ({ name: c.name, prefix: c.repository.prefix })),
        catalog,
      });
      recordsWrittenOnlyBy(this.bucket, roots.flatMap(recordKeys), lambdaRolesOf(this));
    }

    if (crossAccount) {
      this.role = new Role(this, 'CopyRole', {
        roleName: names.roleName,
        description: `pgsnap ${environment.name}: assumed by the source account's DR copier to copy backups here`,
        assumedBy: new AccountPrincipal(sourceAccount).withConditions({
          StringEquals: { 'sts:ExternalId': dr.externalId },
          ArnEquals: { 'aws:PrincipalArn': sourceRole(names.copierRoleName) },
        }),
        maxSessionDuration: Duration.hours(1),
        inlinePolicies: {
          copy: this.copyPolicy(names, sourceAccount, sourceRegion, clusterNames, dr.snapshotLock),
        },
      });
      // The copies are re-encrypted with the DR key, and the DR objects encrypted with it.
      this.key.grantEncryptDecrypt(this.role);
      this.key.grant(this.role, 'kms:CreateGrant', 'kms:DescribeKey');
      // Reads and writes, never deletes: what DR keeps is for DR retention, in this account, to let go.
      const scopes = grantScopes(clusters, (c) => ({
        name: c.name,
        bucket: this.bucket,
        prefix: c.repository.prefix,
      }));
      for (const { root } of scopes) {
        this.bucket.grantRead(this.role, `${root}/*`);
        this.bucket.grantPut(this.role, `${root}/*`);
      }
      acknowledge(this.role, {
        [`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:kms:${sourceRegion}:${sourceAccount}:key/*]`]:
          'the source volumes may be encrypted with any of the source account’s keys; EBS uses them only ' +
          'through the grant the source makes for each backup, and only via EC2 (kms:ViaService)',
        [`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${sourceRegion}::snapshot/*]`]:
          'the source snapshot ids are not known in advance; they can be copied only when the source shares them',
        [`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${names.region}::snapshot/*]`]:
          'copy ids are not known in advance; copies are created and tagged, and locked, only with a configured ' +
          'cluster tag',
        'AwsSolutions-IAM5[Resource::*]': 'ec2:DescribeSnapshots supports no resource-level permissions',
        'AwsSolutions-IAM5[Action::kms:ReEncrypt*]':
          'CDK key grant on the DR key: re-encryption of the copies',
        'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]':
          'CDK key grant on the DR key: SSE-KMS objects and copies',
        'AwsSolutions-IAM5[Action::s3:GetObject*]': 'CDK grantRead on the copied clusters’ prefixes',
        'AwsSolutions-IAM5[Action::s3:GetBucket*]': 'CDK grantRead: bucket location and settings, read only',
        'AwsSolutions-IAM5[Action::s3:List*]':
          'CDK grantRead: listing the catalog to find what is already copied',
        'AwsSolutions-IAM5[Action::s3:Abort*]': 'CDK grantPut: aborting its own multipart uploads',
        ...Object.fromEntries(
          scopes.map(({ root, whose }) => [
            `AwsSolutions-IAM5[Resource::<${this.getLogicalId(this.bucket.node.defaultChild as never)}.Arn>/${root}/*]`,
            `the artifacts, manifests and cluster.json of ${whose} backups, under their prefix only`,
          ]),
        ),
      });
    }
  }

  private copyPolicy(
    names: DrNames,
    sourceAccount: string,
    sourceRegion: string,
    clusterNames: string[],
    lock: DrConfig['snapshotLock'],
  ): PolicyDocument {
    const snapshots = (region: string) => `arn:${this.partition}:ec2:${region}::snapshot/*`;
    return new PolicyDocument({
      statements: [
        new PolicyStatement({
          sid: 'CopySharedSourceSnapshots',
          actions: ['ec2:CopySnapshot'],
          resources: [snapshots(sourceRegion)],
        }),
        new PolicyStatement({
          sid: 'CreateTaggedCopies',
          actions: ['ec2:CopySnapshot'],
          resources: [snapshots(names.region)],
          conditions: clusterTagCondition(`aws:RequestTag/${snapshotTags.cluster}`, clusterNames),
        }),
        new PolicyStatement({
          sid: 'TagCopiesAsTheyAreMade',
          actions: ['ec2:CreateTags'],
          resources: [snapshots(names.region)],
          conditions: { StringEquals: { 'ec2:CreateAction': 'CopySnapshot' } },
        }),
        // A lock can be set, never shortened below the configured duration: a governance lock can be
        // shortened by LockSnapshot itself (https://docs.aws.amazon.com/ebs/latest/userguide/snapshot-lock-iam.html),
        // so the role may lock only for at least `days`. Compliance mode, past its cooling-off period, cannot
        // be shortened by anyone; it is what the README recommends.
        ...(lock
          ? [
              new PolicyStatement({
                sid: 'LockOwnCopiesForTheConfiguredDuration',
                actions: ['ec2:LockSnapshot'],
                resources: [snapshots(names.region)],
                conditions: {
                  ...clusterTagCondition(`aws:ResourceTag/${snapshotTags.cluster}`, clusterNames),
                  NumericGreaterThanEquals: { 'ec2:SnapshotLockDuration': lock.days },
                },
              }),
            ]
          : []),
        new PolicyStatement({
          sid: 'DescribeSnapshots',
          actions: ['ec2:DescribeSnapshots'],
          resources: ['*'],
        }),
        new PolicyStatement({
          sid: 'UseSourceKeysThroughEbs',
          effect: Effect.ALLOW,
          actions: sourceKeyActions,
          resources: [`arn:${this.partition}:kms:${sourceRegion}:${sourceAccount}:key/*`],
          conditions: { StringLike: { 'kms:ViaService': 'ec2.*.amazonaws.com' } },
        }),
      ],
    });
  }
}
