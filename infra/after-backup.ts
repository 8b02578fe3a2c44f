/**
 * The source account's side of DR copies and retention: the Lambdas of the
 * steps in after-backup-steps.ts, the copier role with its fixed name (the DR
 * stack trusts exactly that ARN), their permissions, the alarm on failed
 * copies, and one EventBridge Scheduler schedule per cluster that runs
 * retention on its own. Retention here is the source's only: the DR copies
 * are retained by the DR stack, in the DR account, and the copier may create,
 * tag and lock there but never delete.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { ManagedPolicy, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { State, StateMachine, Succeed } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { grantOperations } from '#domain/ebs/dr-sharing';
import type { DrTarget } from '#domain/ebs/dr-target';
import { snapshotTags } from '#domain/ebs/snapshots';
import { acknowledge, arnReference, bucketFinding, nagArn, wildcardReasons } from './acknowledge.ts';
import { type AfterBackupFunctions, afterBackupSteps } from './after-backup-steps.ts';
import { clusterMetric } from './archive-alarms.ts';
import { BackupFunction } from './backup-function.ts';
import type { EnvironmentConfig } from './config.ts';
import { drNames, drRepositoryUrl, isCrossAccountDr } from './dr-config.ts';
import { copyMetrics } from './metrics-and-events.ts';
import { Retention } from './retention.ts';

export interface AfterBackupProps {
  config: EnvironmentConfig;
  /** The repository bucket of a cluster, and its URL (as the agent uses it). */
  repositoryOf: (cluster: EnvironmentConfig['clusters'][number]) => { bucket: IBucket; url: string };
}

export class AfterBackup extends Construct {
  readonly functions: AfterBackupFunctions = {};
  readonly retention: Retention | undefined;
  private readonly config: EnvironmentConfig;

  constructor(scope: Construct, id: string, props: AfterBackupProps) {
    super(scope, id);
    const { config } = props;
    this.config = config;
    const stack = Stack.of(this);
    const dr = config.dr;
    const copied = dr ? config.clusters.filter((c) => c.copyToDr) : [];
    const retained = config.clusters.filter((c) => c.retention);
    if (copied.length === 0 && retained.length === 0) return;

    const sourceSnapshots = stack.formatArn({
      service: 'ec2',
      account: '',
      resource: 'snapshot',
      resourceName: '*',
    });
    let role: Role | undefined;
    let target: DrTarget | undefined;
    if (dr && copied.length > 0) {
      const names = drNames(config, dr);
      const crossAccount = isCrossAccountDr(config, dr);
      const drRoleArn = `arn:${stack.partition}:iam::${names.account}:role/${names.roleName}`;
      target = {
        sourceAccount: config.account ?? stack.account,
        sourceRegion: config.region ?? stack.region,
        account: names.account,
        region: names.region,
        kmsKeyArn: `arn:${stack.partition}:kms:${names.region}:${names.account}:${names.keyAlias}`,
        ...(crossAccount ? { roleArn: drRoleArn, externalId: dr.externalId! } : {}),
        ...(dr.snapshotLock ? { snapshotLock: dr.snapshotLock } : {}),
        clusters: Object.fromEntries(copied.map((c) => [c.name, { repository: drRepositoryUrl(names, c) }])),
      };
      role = new Role(this, 'CopierRole', {
        roleName: names.copierRoleName,
        description: `pgsnap ${config.name}: copies backups to DR`,
        assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
        managedPolicies: [ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaBasicExecutionRole')],
      });
      const sourceKeys = stack.formatArn({ service: 'kms', resource: 'key', resourceName: '*' });
      role.addToPolicy(new PolicyStatement({ actions: ['ec2:DescribeSnapshots'], resources: ['*'] }));
      if (crossAccount) {
        role.addToPolicy(new PolicyStatement({ actions: ['sts:AssumeRole'], resources: [drRoleArn] }));
        role.addToPolicy(
          new PolicyStatement({
            actions: ['ec2:ModifySnapshotAttribute'],
            resources: [sourceSnapshots],
            conditions: {
              StringEquals: { [`aws:ResourceTag/${snapshotTags.cluster}`]: copied.map((c) => c.name) },
            },
          }),
        );
        role.addToPolicy(
          new PolicyStatement({
            actions: ['kms:CreateGrant'],
            resources: [sourceKeys],
            conditions: {
              StringEquals: { 'kms:GranteePrincipal': drRoleArn },
              'ForAllValues:StringEquals': { 'kms:GrantOperations': grantOperations },
            },
          }),
        );
        role.addToPolicy(
          new PolicyStatement({
            actions: ['kms:DescribeKey', 'kms:ListGrants', 'kms:RevokeGrant'],
            resources: [sourceKeys],
          }),
        );
      } else {
        const drSnapshots = `arn:${stack.partition}:ec2:${names.region}::snapshot/*`;
        const copiedNames = copied.map((c) => c.name);
        role.addToPolicy(
          new PolicyStatement({ actions: ['ec2:CopySnapshot'], resources: [sourceSnapshots] }),
        );
        role.addToPolicy(
          new PolicyStatement({
            actions: ['ec2:CopySnapshot'],
            resources: [drSnapshots],
            conditions: { StringEquals: { [`aws:RequestTag/${snapshotTags.cluster}`]: copiedNames } },
          }),
        );
        role.addToPolicy(
          new PolicyStatement({
            actions: ['ec2:CreateTags'],
            resources: [drSnapshots],
            conditions: { StringEquals: { 'ec2:CreateAction': 'CopySnapshot' } },
          }),
        );
        // Locks never shorter than the configured days (a governance lock can be shortened by LockSnapshot
        // itself); no DeleteSnapshot: the DR copies are deleted by DR retention, in the DR stack.
        if (dr.snapshotLock) {
          role.addToPolicy(
            new PolicyStatement({
              actions: ['ec2:LockSnapshot'],
              resources: [drSnapshots],
              conditions: {
                StringEquals: { [`aws:ResourceTag/${snapshotTags.cluster}`]: copiedNames },
                NumericGreaterThanEquals: { 'ec2:SnapshotLockDuration': dr.snapshotLock.days },
              },
            }),
          );
        }
        role.addToPolicy(
          new PolicyStatement({
            actions: [
              'kms:Decrypt',
              'kms:DescribeKey',
              'kms:CreateGrant',
              'kms:ReEncryptFrom',
              'kms:GenerateDataKeyWithoutPlaintext',
            ],
            resources: [sourceKeys],
            conditions: { StringLike: { 'kms:ViaService': 'ec2.*.amazonaws.com' } },
          }),
        );
        // The DR key's policy names the account principal (KMS refuses a key policy naming a role that does not
        // exist yet, and the DR stack is deployed first), which only lets IAM policies decide: the copier needs its
        // own statement for the key, which EBS uses to re-encrypt the copies and S3 to encrypt the DR objects. Its
        // id is unknown here, so the key is named by its alias (kms:ResourceAliases) and used only through EBS
        // and S3 in the DR region (https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption-requirements.html).
        role.addToPolicy(
          new PolicyStatement({
            actions: [
              'kms:Decrypt',
              'kms:DescribeKey',
              'kms:CreateGrant',
              'kms:ReEncryptFrom',
              'kms:ReEncryptTo',
              'kms:GenerateDataKey',
              'kms:GenerateDataKeyWithoutPlaintext',
            ],
            resources: [`arn:${stack.partition}:kms:${names.region}:${names.account}:key/*`],
            conditions: {
              'ForAnyValue:StringEquals': { 'kms:ResourceAliases': names.keyAlias },
              StringEquals: {
                'kms:ViaService': [`ec2.${names.region}.amazonaws.com`, `s3.${names.region}.amazonaws.com`],
              },
            },
          }),
        );
        role.addToPolicy(
          new PolicyStatement({
            actions: ['s3:GetObject', 's3:PutObject'],
            resources: copied.map(
              (c) => `arn:${stack.partition}:s3:::${names.bucketName}/${c.repository.prefix}${c.name}/*`,
            ),
          }),
        );
        role.addToPolicy(
          new PolicyStatement({
            actions: ['s3:ListBucket'],
            resources: [`arn:${stack.partition}:s3:::${names.bucketName}`],
          }),
        );
      }
    }

    const environment = {
      ...(target ? { PGSNAP_DR: stack.toJsonString(target) } : {}),
      PGSNAP_FIRST_POLL_SECONDS: String(config.timeouts.firstPollSeconds),
      PGSNAP_MAX_POLL_SECONDS: String(config.timeouts.maxPollSeconds),
      PGSNAP_COPY_HOURS: String(dr?.copyHours ?? 24),
    };
    const fn = (id: string, handler: string, description: string, timeout = Duration.minutes(2)) =>
      new BackupFunction(this, id, { handler, description, environment, timeout, ...(role ? { role } : {}) });
    if (target) {
      this.functions.copySnapshots = fn(
        'CopySnapshots',
        'copy-snapshots',
        'pgsnap: starts the DR copies of a backup',
        Duration.minutes(5),
      );
      this.functions.checkCopies = fn(
        'CheckCopies',
        'check-copies',
        'pgsnap: checks whether the DR copies are completed',
      );
      this.functions.recordCopies = fn(
        'RecordCopies',
        'record-copies',
        'pgsnap: records how the DR copies ended',
        Duration.minutes(5),
      );
    }
    if (retained.length > 0) {
      this.retention = new Retention(this, 'Retention', {
        side: 'source',
        clusters: retained.map((c) => ({
          name: c.name,
          policy: c.retention!,
          schedule: c.retention!.schedule,
          repositoryUrl: props.repositoryOf(c).url,
          bucket: props.repositoryOf(c).bucket,
          objects: `${c.repository.prefix}${c.name}/*`,
        })),
      });
      this.functions.applyRetention = this.retention.function;
    }

    // Source repository: copy reads the backup and record rewrites the manifest (retention's rights are
    // its own, infra/retention.ts).
    const all = Object.values(this.functions);
    const copiers = all.filter((f) => f !== this.functions.applyRetention);
    for (const cluster of config.clusters) {
      const { bucket } = props.repositoryOf(cluster);
      const prefix = `${cluster.repository.prefix}${cluster.name}/*`;
      for (const f of copiers) {
        bucket.grantRead(f, prefix);
        bucket.grantPut(f, prefix);
        acknowledge(role ?? f, {
          [`AwsSolutions-IAM5[Resource::${bucketFinding(bucket)}/${prefix}]`]: `reads the backups of ${cluster.name} and rewrites their manifests, under its prefix only`,
        });
      }
    }
    const grantReasons = {
      'AwsSolutions-IAM5[Action::s3:GetObject*]':
        'CDK grantRead: object reads, limited to the cluster prefixes',
      'AwsSolutions-IAM5[Action::s3:GetBucket*]': 'CDK grantRead: bucket location and settings, read only',
      'AwsSolutions-IAM5[Action::s3:List*]':
        'CDK grantRead: listing the catalog to find what is already copied',
      'AwsSolutions-IAM5[Action::s3:Abort*]': 'CDK grantPut: aborting its own multipart uploads',
      'AwsSolutions-IAM5[Action::kms:ReEncrypt*]':
        'CDK key grant for the repository key, needed for SSE-KMS objects',
      'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]':
        'CDK key grant for the repository key, needed for SSE-KMS objects',
      'AwsSolutions-IAM5[Resource::*]': `${wildcardReasons.xray}; so does ec2:DescribeSnapshots, which only reads`,
      [`AwsSolutions-IAM5[Resource::${nagArn(this, 'ec2', 'snapshot/*', { account: false })}]`]:
        'snapshot ids are not known in advance; sharing and deleting are allowed only for snapshots tagged with a configured cluster',
      [`AwsSolutions-IAM5[Resource::${nagArn(this, 'kms', 'key/*')}]`]:
        'the volumes may be encrypted with any key of the account; grants are limited to the DR role and the operations a copy needs',
    };
    for (const f of all) acknowledge(f, grantReasons);
    if (role) {
      acknowledge(role, {
        ...grantReasons,
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]':
          "AWSLambdaBasicExecutionRole only lets the functions write their own log streams; it is AWS's maintained minimum",
        ...(dr && target && !target.roleArn
          ? {
              [`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${target.region}::snapshot/*]`]:
                'copy ids are not known in advance; copies are made and tagged only with a configured cluster tag',
              [`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:kms:${target.region}:${target.account}:key/*]`]:
                "the DR key's id is not known to the source stack; only the key with the DR alias, and only through EBS and S3",
              ...Object.fromEntries(
                copied.map((c) => [
                  `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::${drNames(config, dr).bucketName}/${c.repository.prefix}${c.name}/*]`,
                  `the DR artifacts and manifests of ${c.name}, under its prefix only`,
                ]),
              ),
            }
          : {}),
      });
    }
  }

  /** The steps for the state machine, ending in `done`. */
  steps(scope: Construct, done: Succeed): State {
    return afterBackupSteps(scope, done, this.functions);
  }

  /** Acknowledges on the state machine what invoking these functions adds; adds the failed-copy alarm. */
  attach(stateMachine: StateMachine, topic: ITopic): void {
    acknowledge(stateMachine, {
      ...Object.fromEntries(
        Object.values(this.functions).map((fn) => [
          `AwsSolutions-IAM5[Resource::${arnReference(fn)}:*]`,
          wildcardReasons.lambdaVersions,
        ]),
      ),
    });
    this.retention?.failedAlarm.addAlarmAction(new SnsAction(topic));
    if (!this.functions.copySnapshots) return;
    for (const cluster of this.config.clusters.filter((c) => c.copyToDr)) {
      new Alarm(this, `${cluster.name}-CopyFailed`, {
        alarmDescription: `A DR copy of a ${cluster.name} backup failed; the backup itself is completed at the source`,
        metric: clusterMetric(cluster.name, copyMetrics.failed, 'Sum', Duration.minutes(5)),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }).addAlarmAction(new SnsAction(topic));
    }
  }
}
