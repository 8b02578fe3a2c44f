/**
 * The restore's Lambdas, with exactly the rights each step needs. What a
 * restore may touch is bounded by tags: it creates volumes and instances only
 * tagged with a configured cluster and a restoreId, and detaches, deletes and
 * terminates only what carries a restoreId tag, so it can never remove a
 * source volume or a database host. Built in the caller's scope (the Restore
 * construct), so that their logical ids are those a deployed stack already has.
 */

import { Stack } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { snapshotTags } from '#domain/ebs/snapshots';
import { restoreTags } from '#domain/restore/volumes';
import type { ClusterCatalog } from '../config/cluster-catalog.ts';
import type { DrillConfig } from '../config/config.ts';
import { acknowledge, bucketFinding, nagArn } from '../guards/acknowledge.ts';
import { clusterTagCondition, grantScopes } from '../guards/fleet-grants.ts';
import { HandlerFunction } from '../lambda/handler-function.ts';
import type { RestoreFunctions } from './restore-steps.ts';

/** Snapshots and images have no account in their ARN. */
const accountless = (resource: string) => resource === 'snapshot' || resource === 'image';

/** Every `resource` of EC2 in this account and region (`arn:…:ec2:<region>:<account>:<resource>/*`). */
export function restoreEc2Arn(scope: Construct, resource: string): string {
  return Stack.of(scope).formatArn({
    service: 'ec2',
    resource,
    resourceName: '*',
    ...(accountless(resource) ? { account: '' } : {}),
    // A subnet shared through RAM has its owner's account in its ARN.
    ...(resource === 'subnet' ? { account: '*' } : {}),
  });
}

/** The cdk-nag finding for the wildcard of restoreEc2Arn. */
export function ec2Wildcard(scope: Construct, resource: string): string {
  const arn = nagArn(scope, 'ec2', `${resource}/*`, accountless(resource) ? { account: false } : {});
  return `AwsSolutions-IAM5[Resource::${resource === 'subnet' ? arn.replace(/:ec2:([^:]*):[^:]*:/, ':ec2:$1:*:') : arn}]`;
}

/** A cluster the restore state machine may restore: its repository and its drills. */
export interface RestoreCluster {
  name: string;
  bucket: IBucket;
  prefix: string;
  drills?: DrillConfig | undefined;
  /** The configuration's recoveryHours; none: the agent's default. */
  recoveryHours?: number | undefined;
}

/** Builds the restore's Lambdas for `clusters` in `scope`. */
export function restoreFunctions(
  scope: Construct,
  clusters: RestoreCluster[],
  catalog: ClusterCatalog,
): RestoreFunctions {
  const stack = Stack.of(scope);
  const clusterNames = clusters.map((c) => c.name);
  const ec2Arn = (resource: string) => restoreEc2Arn(scope, resource);
  // The cluster tag's values while the clusters are few, any value past that (infra/guards/fleet-grants.ts).
  const ofClusters = (key: 'aws:ResourceTag' | 'aws:RequestTag') =>
    clusterTagCondition(`${key}/${restoreTags.cluster}`, clusterNames);
  // Only what a restore made carries a restoreId tag; a source volume or a database host never does.
  const madeByRestore = {
    ...ofClusters('aws:ResourceTag'),
    Null: { [`aws:ResourceTag/${restoreTags.restoreId}`]: 'false' },
  };
  const taggedAtCreation = {
    ...ofClusters('aws:RequestTag'),
    Null: { [`aws:RequestTag/${restoreTags.restoreId}`]: 'false' },
  };
  // The volumes RunInstances makes with the instance carry the restore-root tag (domain/restore/instance.ts).
  const launchedWithInstance = {
    ...ofClusters('aws:RequestTag'),
    Null: { [`aws:RequestTag/${restoreTags.restoreRoot}`]: 'false' },
  };
  const keys = stack.formatArn({ service: 'kms', resource: 'key', resourceName: '*' });
  const viaEc2 = { 'kms:ViaService': `ec2.${stack.region}.amazonaws.com` };
  /*
   * "You must grant users permission to call the following actions in order to use EBS encryption:
   * kms:CreateGrant, kms:Decrypt, kms:DescribeKey, kms:GenerateDataKeyWithoutPlainText, kms:ReEncrypt"
   * (EBS, Requirements for Amazon EBS encryption); EC2 makes the grant with the caller's identity when
   * it attaches or launches with a volume under a customer managed key. Grants only for AWS resources.
   */
  const ebsEncryption = (actions: string[]) => [
    new PolicyStatement({
      actions: ['kms:CreateGrant'],
      resources: [keys],
      conditions: { StringEquals: viaEc2, Bool: { 'kms:GrantIsForAWSResource': 'true' } },
    }),
    ...(actions.length > 0
      ? [new PolicyStatement({ actions, resources: [keys], conditions: { StringEquals: viaEc2 } })]
      : []),
  ];
  const describe = (...actions: string[]) => new PolicyStatement({ actions, resources: ['*'] });
  const fn = (handler: string, description: string, environment: Record<string, string> = {}) =>
    new HandlerFunction(scope, handler, { handler, description: `pgsnap: ${description}`, environment });
  const prepareRestore = fn('prepare-restore', 'checks a restore request against the backup and its WAL');
  catalog.grantRead(prepareRestore);
  const functions: RestoreFunctions = {
    prepareRestore,
    findRestoreInstance: fn('find-restore-instance', 'launches or checks the instance a restore goes to'),
    checkRestoreInstance: fn('check-restore-instance', "checks whether a restore's instance is running"),
    createRestoreVolumes: fn('create-restore-volumes', "makes a volume from each of a backup's snapshots"),
    checkRestoreVolumes: fn(
      'check-restore-volumes',
      "checks whether a restore's volumes are available or attached",
    ),
    attachRestoreVolumes: fn('attach-restore-volumes', "attaches a restore's volumes to its instance"),
    measureRestoreInitialization: fn(
      'measure-restore-initialization',
      "records what EBS says of a restore's volume initialization",
    ),
    recordRestore: fn('record-restore', "writes each phase into the restore's record"),
    releaseRestoreVolumes: fn(
      'release-restore-volumes',
      "detaches and deletes a restore's volumes, by their tag",
    ),
    terminateRestoreInstance: fn(
      'terminate-restore-instance',
      'terminates the instance a restore launched, by its tag',
    ),
  };
  const f = functions;

  // The repository: everything of the cluster read (manifests, artifacts, the WAL listing), restore records written.
  for (const { bucket, root, whose } of grantScopes(clusters, (c) => c)) {
    bucket.grantRead(f.prepareRestore, `${root}/*`);
    bucket.grantRead(f.findRestoreInstance, `${root}/backups/*`);
    for (const writer of [
      f.prepareRestore,
      f.findRestoreInstance,
      f.createRestoreVolumes,
      f.checkRestoreVolumes,
      f.attachRestoreVolumes,
      f.measureRestoreInitialization,
      f.recordRestore,
    ]) {
      bucket.grantReadWrite(writer, `${root}/restores/*`);
      acknowledge(writer, {
        [`AwsSolutions-IAM5[Resource::${bucketFinding(bucket)}/${root}/restores/*]`]: `reads and rewrites the records of ${whose} restores, under its prefix only`,
      });
    }
    // Release and termination only read the ids the restore recorded, beside the tags (which EC2 shows late):
    // they run on the cleanup path, after whatever failed, and have no record to write.
    for (const reader of [f.releaseRestoreVolumes, f.terminateRestoreInstance]) {
      bucket.grantRead(reader, `${root}/restores/*`);
      acknowledge(reader, {
        [`AwsSolutions-IAM5[Resource::${bucketFinding(bucket)}/${root}/restores/*]`]: `reads the records of ${whose} restores, under its prefix only`,
      });
    }
    acknowledge(f.prepareRestore, {
      [`AwsSolutions-IAM5[Resource::${bucketFinding(bucket)}/${root}/*]`]: `reads ${whose} manifests and artifacts and lists its WAL, to check a restore before anything is made`,
    });
    acknowledge(f.findRestoreInstance, {
      [`AwsSolutions-IAM5[Resource::${bucketFinding(bucket)}/${root}/backups/*]`]: `reads ${whose} manifests, to refuse the source host as a restore target`,
    });
  }

  f.prepareRestore.addToRolePolicy(describe('ec2:DescribeVolumes'));
  f.findRestoreInstance.addToRolePolicy(describe('ec2:DescribeInstances', 'ec2:DescribeVolumes'));
  f.findRestoreInstance.addToRolePolicy(
    new PolicyStatement({
      actions: ['ec2:RunInstances'],
      resources: [ec2Arn('instance')],
      conditions: taggedAtCreation,
    }),
  );
  f.findRestoreInstance.addToRolePolicy(
    new PolicyStatement({
      actions: ['ec2:RunInstances'],
      resources: [ec2Arn('volume')],
      conditions: launchedWithInstance,
    }),
  );
  for (const statement of ebsEncryption([
    'kms:Decrypt',
    'kms:DescribeKey',
    'kms:GenerateDataKeyWithoutPlaintext',
    'kms:ReEncryptFrom',
    'kms:ReEncryptTo',
  ]))
    f.findRestoreInstance.addToRolePolicy(statement);
  // A launch template may name its AMI as resolve:ssm:<parameter>; RunInstances reads it as the caller.
  f.findRestoreInstance.addToRolePolicy(
    new PolicyStatement({
      actions: ['ssm:GetParameters'],
      resources: [
        stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: '*' }),
        stack.formatArn({
          service: 'ssm',
          account: '',
          resource: 'parameter',
          resourceName: 'aws/service/*',
        }),
      ],
    }),
  );
  f.findRestoreInstance.addToRolePolicy(describe('ec2:DescribeLaunchTemplateVersions'));
  f.findRestoreInstance.addToRolePolicy(
    new PolicyStatement({
      actions: ['ec2:RunInstances'],
      resources: ['network-interface', 'subnet', 'security-group', 'launch-template', 'key-pair']
        .map(ec2Arn)
        .concat(ec2Arn('image')),
    }),
  );
  f.findRestoreInstance.addToRolePolicy(
    new PolicyStatement({
      actions: ['ec2:CreateTags'],
      resources: [ec2Arn('instance'), ec2Arn('volume')],
      conditions: { StringEquals: { 'ec2:CreateAction': 'RunInstances' } },
    }),
  );
  // A drill instance's profile: only roles named for pgsnap, passed only to EC2.
  f.findRestoreInstance.addToRolePolicy(
    new PolicyStatement({
      actions: ['iam:PassRole'],
      resources: [
        stack.formatArn({ service: 'iam', region: '', resource: 'role', resourceName: 'pgsnap-*' }),
      ],
      conditions: { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } },
    }),
  );
  f.checkRestoreInstance.addToRolePolicy(describe('ec2:DescribeInstances'));

  // The snapshots' own pgsnap:cluster tags, checked against the restored cluster before CreateVolume.
  f.createRestoreVolumes.addToRolePolicy(describe('ec2:DescribeSnapshots'));
  f.createRestoreVolumes.addToRolePolicy(
    new PolicyStatement({
      actions: ['ec2:CreateVolume'],
      resources: [ec2Arn('volume')],
      conditions: taggedAtCreation,
    }),
  );
  f.createRestoreVolumes.addToRolePolicy(
    new PolicyStatement({
      actions: ['ec2:CreateVolume'],
      resources: [ec2Arn('snapshot')],
      conditions: clusterTagCondition(`aws:ResourceTag/${snapshotTags.cluster}`, clusterNames),
    }),
  );
  f.createRestoreVolumes.addToRolePolicy(
    new PolicyStatement({
      actions: ['ec2:CreateTags'],
      resources: [ec2Arn('volume')],
      conditions: { StringEquals: { 'ec2:CreateAction': 'CreateVolume' } },
    }),
  );
  // Volumes from encrypted snapshots: EBS uses the key on the caller's behalf, and only through EC2.
  f.createRestoreVolumes.addToRolePolicy(
    new PolicyStatement({
      actions: [
        'kms:CreateGrant',
        'kms:Decrypt',
        'kms:DescribeKey',
        'kms:GenerateDataKeyWithoutPlaintext',
        'kms:ReEncryptFrom',
        'kms:ReEncryptTo',
      ],
      resources: [stack.formatArn({ service: 'kms', resource: 'key', resourceName: '*' })],
      conditions: { StringEquals: { 'kms:ViaService': `ec2.${stack.region}.amazonaws.com` } },
    }),
  );
  f.checkRestoreVolumes.addToRolePolicy(describe('ec2:DescribeVolumes'));
  f.attachRestoreVolumes.addToRolePolicy(describe('ec2:DescribeInstances', 'ec2:DescribeVolumes'));
  f.attachRestoreVolumes.addToRolePolicy(
    new PolicyStatement({
      actions: ['ec2:AttachVolume'],
      resources: [ec2Arn('volume')],
      conditions: madeByRestore,
    }),
  );
  f.attachRestoreVolumes.addToRolePolicy(
    new PolicyStatement({ actions: ['ec2:AttachVolume'], resources: [ec2Arn('instance')] }),
  );
  for (const statement of ebsEncryption([])) f.attachRestoreVolumes.addToRolePolicy(statement);
  // DescribeVolumeStatus has no resource-level permissions (Service Authorization Reference): `*` only.
  f.measureRestoreInitialization.addToRolePolicy(describe('ec2:DescribeVolumeStatus'));
  f.releaseRestoreVolumes.addToRolePolicy(describe('ec2:DescribeVolumes'));
  f.releaseRestoreVolumes.addToRolePolicy(
    new PolicyStatement({
      actions: ['ec2:DetachVolume', 'ec2:DeleteVolume'],
      resources: [ec2Arn('volume')],
      conditions: madeByRestore,
    }),
  );
  f.releaseRestoreVolumes.addToRolePolicy(
    new PolicyStatement({ actions: ['ec2:DetachVolume'], resources: [ec2Arn('instance')] }),
  );
  f.terminateRestoreInstance.addToRolePolicy(describe('ec2:DescribeInstances'));
  f.terminateRestoreInstance.addToRolePolicy(
    new PolicyStatement({
      actions: ['ec2:TerminateInstances'],
      resources: [ec2Arn('instance')],
      conditions: madeByRestore,
    }),
  );
  const wildcard = (resource: string) => ec2Wildcard(scope, resource);
  const createdByRestore =
    'new resources, whose ids are not known before; allowed only when tagged with a configured cluster and a restoreId (aws:RequestTag)';
  const onlyMadeByRestore =
    'only resources a restore made (tagged with a restoreId and a configured cluster, aws:ResourceTag)';
  acknowledge(f.findRestoreInstance, {
    [wildcard('instance')]: createdByRestore,
    [wildcard('volume')]:
      'new volumes made with the launched instance; allowed only when tagged with a configured cluster and restore-root (aws:RequestTag)',
    [`AwsSolutions-IAM5[Resource::${nagArn(scope, 'kms', 'key/*')}]`]:
      "the launch template's volume keys are the operator's; used only through EC2 (kms:ViaService), grants only for AWS resources",
    'AwsSolutions-IAM5[Action::kms:ReEncrypt*]':
      'EBS re-encrypts a volume made from a snapshot with another key',
    [`AwsSolutions-IAM5[Resource::${nagArn(scope, 'ssm', 'parameter/*')}]`]:
      'an AMI named as resolve:ssm:<parameter> in the launch template, chosen by the operator',
    [`AwsSolutions-IAM5[Resource::${nagArn(scope, 'ssm', 'parameter/aws/service/*', { account: false })}]`]:
      "AWS's public AMI parameters (resolve:ssm:/aws/service/...)",
    [wildcard('network-interface')]:
      "RunInstances from the operator's launch template uses its network interfaces, subnet, security groups, key pair and AMI",
    [wildcard('subnet')]:
      'the subnet the restore request (or drills.launch) names, in this account or shared through RAM by another',
    [wildcard('security-group')]: "the launch template's security groups, chosen by the operator",
    [wildcard('launch-template')]: "the operator's launch template, named in the request",
    [wildcard('key-pair')]:
      "the key pair the operator's launch template names, if any; RunInstances needs it to launch",
    [wildcard('image')]: "the AMI the operator's launch template names, in scope or another account",
    [`AwsSolutions-IAM5[Resource::${nagArn(scope, 'iam', 'role/pgsnap-*').replace(/:iam:[^:]*:/, ':iam::')}]`]:
      'passes only roles named pgsnap-*, and only to EC2 (iam:PassedToService)',
  });
  acknowledge(f.createRestoreVolumes, {
    [wildcard('volume')]: createdByRestore,
    [wildcard('snapshot')]: 'only snapshots tagged with a configured cluster (aws:ResourceTag)',
    [`AwsSolutions-IAM5[Resource::${nagArn(scope, 'kms', 'key/*')}]`]:
      "the snapshots' keys are chosen at backup (and DR copy) time; used only through EC2 (kms:ViaService)",
    'AwsSolutions-IAM5[Action::kms:ReEncrypt*]':
      'EBS re-encrypts a volume made from a snapshot with another key',
  });
  acknowledge(f.attachRestoreVolumes, {
    [`AwsSolutions-IAM5[Resource::${nagArn(scope, 'kms', 'key/*')}]`]:
      "EC2 creates a grant on the volume's key as the caller when it attaches a volume under a customer managed key; only through EC2, only for AWS resources",
    [wildcard('volume')]: onlyMadeByRestore,
    [wildcard('instance')]:
      'the target instance is given by the operator or launched by the restore; only volumes a restore made can be attached',
  });
  acknowledge(f.releaseRestoreVolumes, {
    [wildcard('volume')]: onlyMadeByRestore,
    [wildcard('instance')]:
      'detaching from whichever instance holds them; only volumes a restore made can be detached',
  });
  acknowledge(f.terminateRestoreInstance, { [wildcard('instance')]: onlyMadeByRestore });
  for (const writer of Object.values(f)) {
    acknowledge(writer, {
      'AwsSolutions-IAM5[Action::s3:GetObject*]':
        'CDK grantRead: object reads, limited to the cluster prefixes',
      'AwsSolutions-IAM5[Action::s3:GetBucket*]': 'CDK grantRead: bucket location and settings, read only',
      'AwsSolutions-IAM5[Action::s3:List*]': 'CDK grantRead: listing the catalog and the WAL',
      'AwsSolutions-IAM5[Action::s3:DeleteObject*]': 'CDK grantReadWrite: limited to the restore records',
      'AwsSolutions-IAM5[Action::s3:Abort*]': 'CDK grantReadWrite: aborting its own multipart uploads',
      'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]':
        'CDK key grant for the repository key, needed for SSE-KMS objects',
      'AwsSolutions-IAM5[Action::kms:ReEncrypt*]':
        'CDK key grant for the repository key, needed for SSE-KMS objects',
    });
  }

  return functions;
}
