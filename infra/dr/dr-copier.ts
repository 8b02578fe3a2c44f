/**
 * The source account's DR copier: the role the copy Lambdas run as, with its
 * fixed name (the DR stack trusts exactly that ARN), and the DR target they
 * are told about (PGSNAP_DR). Across accounts it shares the snapshots and
 * grants the DR role the keys; in one account it copies itself. It may create,
 * tag and lock in DR but never delete: the DR copies are retained by the DR
 * stack, in the DR account.
 */
import { Stack } from 'aws-cdk-lib';
import { ManagedPolicy, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import { grantOperations } from '#domain/ebs/dr-sharing';
import type { DrTargetInput } from '#domain/ebs/dr-target';
import { snapshotTags } from '#domain/ebs/snapshots';
import type { EnvironmentConfig } from '../config/config.ts';
import { byRepository, clusterTagCondition } from '../guards/fleet-grants.ts';
import { type DrConfig, drNames, isCrossAccountDr } from './dr-config.ts';

export interface DrCopier {
  role: Role;
  target: DrTargetInput;
}

/** Makes the copier's role in `scope` for the `copied` clusters of `config`, which copies to `dr`. */
export function drCopier(
  scope: Construct,
  config: EnvironmentConfig,
  dr: DrConfig,
  copied: EnvironmentConfig['clusters'],
): DrCopier {
  const stack = Stack.of(scope);
  const sourceSnapshots = stack.formatArn({
    service: 'ec2',
    account: '',
    resource: 'snapshot',
    resourceName: '*',
  });
  const names = drNames(config, dr);
  const crossAccount = isCrossAccountDr(config, dr);
  const drRoleArn = `arn:${stack.partition}:iam::${names.account}:role/${names.roleName}`;
  const target: DrTargetInput = {
    sourceAccount: config.account ?? stack.account,
    sourceRegion: config.region ?? stack.region,
    account: names.account,
    region: names.region,
    kmsKeyArn: `arn:${stack.partition}:kms:${names.region}:${names.account}:${names.keyAlias}`,
    ...(crossAccount ? { roleArn: drRoleArn, externalId: dr.externalId! } : {}),
    ...(dr.snapshotLock ? { snapshotLock: dr.snapshotLock } : {}),
    ...(dr.rpoMinutes !== undefined ? { rpoMinutes: dr.rpoMinutes } : {}),
  };
  const role = new Role(scope, 'CopierRole', {
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
        conditions: clusterTagCondition(
          `aws:ResourceTag/${snapshotTags.cluster}`,
          copied.map((c) => c.name),
        ),
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
    role.addToPolicy(new PolicyStatement({ actions: ['ec2:CopySnapshot'], resources: [sourceSnapshots] }));
    role.addToPolicy(
      new PolicyStatement({
        actions: ['ec2:CopySnapshot'],
        resources: [drSnapshots],
        conditions: clusterTagCondition(`aws:RequestTag/${snapshotTags.cluster}`, copiedNames),
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
            ...clusterTagCondition(`aws:ResourceTag/${snapshotTags.cluster}`, copiedNames),
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
        resources: [
          ...new Set(
            copied.map((c) =>
              byRepository(copied.length)
                ? `arn:${stack.partition}:s3:::${names.bucketName}/${c.repository.prefix}*`
                : `arn:${stack.partition}:s3:::${names.bucketName}/${c.repository.prefix}${c.name}/*`,
            ),
          ),
        ],
      }),
    );
    role.addToPolicy(
      new PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [`arn:${stack.partition}:s3:::${names.bucketName}`],
      }),
    );
  }
  return { role, target };
}
