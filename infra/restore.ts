/**
 * Restoring in AWS, as one construct for the source stack and the DR stack:
 * the restore SSM document, the restore Lambdas with exactly the rights each
 * step needs, the restore state machine, the scheduled drills and the alarm
 * "no successful drill in drillDays".
 *
 * What a restore may touch is bounded by tags: it creates volumes and
 * instances only tagged with a configured cluster and a restoreId, and
 * detaches, deletes and terminates only what carries a restoreId tag, so it
 * can never remove a source volume or a database host.
 */
import { Duration, Stack, TimeZone } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { PolicyStatement, Role } from 'aws-cdk-lib/aws-iam';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Schedule, ScheduleExpression, ScheduleTargetInput } from 'aws-cdk-lib/aws-scheduler';
import { StepFunctionsStartExecution } from 'aws-cdk-lib/aws-scheduler-targets';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { snapshotTags } from '#domain/ebs/snapshots';
import { restoreMetrics } from '#domain/restore/steps';
import { restoreTags } from '#domain/restore/volumes';
import { acknowledge, bucketFinding, nagArn } from './acknowledge.ts';
import { clusterMetric } from './archive-alarms.ts';
import { BackupFunction } from './backup-function.ts';
import type { DrillConfig } from './config.ts';
import { RestoreDocument } from './restore-document.ts';
import { RestoreStateMachine } from './restore-state-machine.ts';
import type { RestoreFunctions } from './restore-steps.ts';
import { schedulerPrincipal } from './scheduler-principal.ts';

export interface RestoreCluster {
  name: string;
  bucket: IBucket;
  prefix: string;
  drills?: DrillConfig | undefined;
}

export interface RestoreProps {
  stateMachineName: string;
  clusters: RestoreCluster[];
  timeouts: { heartbeatSeconds: number };
  /** How long the host may take to mount, recover and check (default 4 hours). */
  restoreSeconds?: number;
  /** Where the drill alarms notify (the stack's alarm topic); none in the DR stack. */
  topic?: ITopic;
}

export class Restore extends Construct {
  readonly stateMachine: RestoreStateMachine;
  readonly document: RestoreDocument;
  readonly functions: RestoreFunctions;

  constructor(scope: Construct, id: string, props: RestoreProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const clusterNames = props.clusters.map((c) => c.name);
    const ec2Arn = (resource: string) =>
      stack.formatArn({
        service: 'ec2',
        resource,
        resourceName: '*',
        ...(resource === 'snapshot' || resource === 'image' ? { account: '' } : {}),
        // A subnet shared through RAM has its owner's account in its ARN.
        ...(resource === 'subnet' ? { account: '*' } : {}),
      });
    const ofClusters = { [`aws:ResourceTag/${restoreTags.cluster}`]: clusterNames };
    // Only what a restore made carries a restoreId tag; a source volume or a database host never does.
    const madeByRestore = {
      StringEquals: ofClusters,
      Null: { [`aws:ResourceTag/${restoreTags.restoreId}`]: 'false' },
    };
    const taggedAtCreation = {
      StringEquals: { [`aws:RequestTag/${restoreTags.cluster}`]: clusterNames },
      Null: { [`aws:RequestTag/${restoreTags.restoreId}`]: 'false' },
    };
    // The volumes RunInstances makes with the instance carry the restore-root tag (domain/restore/instance.ts).
    const launchedWithInstance = {
      StringEquals: { [`aws:RequestTag/${restoreTags.cluster}`]: clusterNames },
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
    const clustersVariable = JSON.stringify(
      props.clusters.map((c) => ({ name: c.name, repository: `s3://${c.bucket.bucketName}/${c.prefix}` })),
    );

    const fn = (handler: string, description: string, environment: Record<string, string> = {}) =>
      new BackupFunction(this, handler, { handler, description: `pgsnap: ${description}`, environment });
    this.functions = {
      prepareRestore: fn('prepare-restore', 'checks a restore request against the backup and its WAL', {
        PGSNAP_CLUSTERS: clustersVariable,
      }),
      findRestoreInstance: fn('find-restore-instance', 'launches or checks the instance a restore goes to'),
      checkRestoreInstance: fn('check-restore-instance', "checks whether a restore's instance is running"),
      createRestoreVolumes: fn('create-restore-volumes', "makes a volume from each of a backup's snapshots"),
      checkRestoreVolumes: fn(
        'check-restore-volumes',
        "checks whether a restore's volumes are available or attached",
      ),
      attachRestoreVolumes: fn('attach-restore-volumes', "attaches a restore's volumes to its instance"),
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
    const f = this.functions;

    // The repository: everything of the cluster read (manifests, artifacts, the WAL listing), restore records written.
    for (const cluster of props.clusters) {
      const root = `${cluster.prefix}${cluster.name}`;
      cluster.bucket.grantRead(f.prepareRestore, `${root}/*`);
      cluster.bucket.grantRead(f.findRestoreInstance, `${root}/backups/*`);
      for (const writer of [
        f.prepareRestore,
        f.findRestoreInstance,
        f.createRestoreVolumes,
        f.checkRestoreVolumes,
        f.attachRestoreVolumes,
        f.recordRestore,
        f.releaseRestoreVolumes,
        f.terminateRestoreInstance,
      ]) {
        cluster.bucket.grantReadWrite(writer, `${root}/restores/*`);
        acknowledge(writer, {
          [`AwsSolutions-IAM5[Resource::${bucketFinding(cluster.bucket)}/${root}/restores/*]`]: `reads and rewrites the records of ${cluster.name}'s restores, under its prefix only`,
        });
      }
      acknowledge(f.prepareRestore, {
        [`AwsSolutions-IAM5[Resource::${bucketFinding(cluster.bucket)}/${root}/*]`]: `reads ${cluster.name}'s manifests and artifacts and lists its WAL, to check a restore before anything is made`,
      });
      acknowledge(f.findRestoreInstance, {
        [`AwsSolutions-IAM5[Resource::${bucketFinding(cluster.bucket)}/${root}/backups/*]`]: `reads ${cluster.name}'s manifests, to refuse the source host as a restore target`,
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
        conditions: { StringEquals: { [`aws:ResourceTag/${snapshotTags.cluster}`]: clusterNames } },
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
    const wildcard = (resource: string) =>
      `AwsSolutions-IAM5[Resource::${nagArn(this, 'ec2', `${resource}/*`, resource === 'snapshot' || resource === 'image' ? { account: false } : {})}]`;
    const createdByRestore =
      'new resources, whose ids are not known before; allowed only when tagged with a configured cluster and a restoreId (aws:RequestTag)';
    const onlyMadeByRestore =
      'only resources a restore made (tagged with a restoreId and a configured cluster, aws:ResourceTag)';
    acknowledge(f.findRestoreInstance, {
      [wildcard('instance')]: createdByRestore,
      [wildcard('volume')]:
        'new volumes made with the launched instance; allowed only when tagged with a configured cluster and restore-root (aws:RequestTag)',
      [`AwsSolutions-IAM5[Resource::${nagArn(this, 'kms', 'key/*')}]`]:
        "the launch template's volume keys are the operator's; used only through EC2 (kms:ViaService), grants only for AWS resources",
      'AwsSolutions-IAM5[Action::kms:ReEncrypt*]':
        'EBS re-encrypts a volume made from a snapshot with another key',
      [`AwsSolutions-IAM5[Resource::${nagArn(this, 'ssm', 'parameter/*')}]`]:
        'an AMI named as resolve:ssm:<parameter> in the launch template, chosen by the operator',
      [`AwsSolutions-IAM5[Resource::${nagArn(this, 'ssm', 'parameter/aws/service/*', { account: false })}]`]:
        "AWS's public AMI parameters (resolve:ssm:/aws/service/...)",
      [`AwsSolutions-IAM5[Resource::${nagArn(this, 'ec2', 'subnet/*').replace(/:ec2:([^:]*):[^:]*:/, ':ec2:$1:*:')}]`]:
        'the subnet the restore request (or drills.launch) names, in this account or shared through RAM by another',
      [wildcard('network-interface')]:
        "RunInstances from the operator's launch template uses its network interfaces, subnet, security groups, key pair and AMI",
      [wildcard('security-group')]: "the launch template's security groups, chosen by the operator",
      [wildcard('launch-template')]: "the operator's launch template, named in the request",
      [wildcard('key-pair')]:
        "the key pair the operator's launch template names, if any; RunInstances needs it to launch",
      [wildcard('image')]: "the AMI the operator's launch template names, in this or another account",
      [`AwsSolutions-IAM5[Resource::${nagArn(this, 'iam', 'role/pgsnap-*').replace(/:iam:[^:]*:/, ':iam::')}]`]:
        'passes only roles named pgsnap-*, and only to EC2 (iam:PassedToService)',
    });
    acknowledge(f.createRestoreVolumes, {
      [wildcard('volume')]: createdByRestore,
      [wildcard('snapshot')]: 'only snapshots tagged with a configured cluster (aws:ResourceTag)',
      [`AwsSolutions-IAM5[Resource::${nagArn(this, 'kms', 'key/*')}]`]:
        "the snapshots' keys are chosen at backup (and DR copy) time; used only through EC2 (kms:ViaService)",
      'AwsSolutions-IAM5[Action::kms:ReEncrypt*]':
        'EBS re-encrypts a volume made from a snapshot with another key',
    });
    acknowledge(f.attachRestoreVolumes, {
      [`AwsSolutions-IAM5[Resource::${nagArn(this, 'kms', 'key/*')}]`]:
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

    this.document = new RestoreDocument(this, 'Document');
    this.stateMachine = new RestoreStateMachine(this, 'StateMachine', {
      stateMachineName: props.stateMachineName,
      functions: this.functions,
      host: {
        documentName: this.document.documentName,
        timeouts: {
          heartbeatSeconds: props.timeouts.heartbeatSeconds,
          hostCommandSeconds: props.restoreSeconds ?? 14_400,
        },
      },
      restoreSeconds: props.restoreSeconds ?? 14_400,
    });
    // The restore document runs nothing but a recorded restore and its teardown, on any instance it is sent to.
    this.stateMachine.stateMachine.addToRolePolicy(
      new PolicyStatement({ actions: ['ssm:SendCommand'], resources: [ec2Arn('instance')] }),
    );
    acknowledge(this.stateMachine, {
      [wildcard('instance')]:
        'the restore document (restore, teardown of one recorded restore) may run on the instance the operator names or the restore launches',
    });

    this.drills(props);
  }

  /**
   * Per cluster with `drills`: a schedule that starts a drill of the latest backup, the alarm on its
   * absence, and with `rtoMinutes` the alarm on a drill slower than that.
   */
  private drills(props: RestoreProps): void {
    const clusters = props.clusters.filter((c) => c.drills);
    if (clusters.length === 0) return;
    const role = new Role(this, 'DrillSchedulerRole', {
      assumedBy: schedulerPrincipal(this),
      description: 'pgsnap drill schedules: start the restore state machine',
    });
    for (const cluster of clusters) {
      const drills = cluster.drills!;
      new Schedule(this, `${cluster.name}-drill`, {
        description: `pgsnap restore drill of ${cluster.name}`,
        schedule: ScheduleExpression.expression(drills.schedule, TimeZone.of(drills.timezone)),
        target: new StepFunctionsStartExecution(this.stateMachine.stateMachine, {
          input: ScheduleTargetInput.fromObject({
            cluster: cluster.name,
            backupId: 'latest',
            mode: 'drill',
            instance: { launch: drills.launch },
            checks: drills.checks,
          }),
          retryAttempts: 2,
          role,
        }),
      });
      // One datapoint a day; the alarm fires when none of the last drillDays had a successful drill.
      const noDrill = new Alarm(this, `${cluster.name}-NoDrill`, {
        alarmDescription:
          `No restore drill of ${cluster.name} succeeded in ${drills.days} days: nobody knows whether its backups restore. ` +
          "Check the drill schedule and the restore state machine's last executions, and the restore records (pgsnap restores list).",
        metric: clusterMetric(cluster.name, restoreMetrics.drillSucceeded, 'Sum', Duration.days(1)),
        threshold: 1,
        evaluationPeriods: drills.days,
        datapointsToAlarm: drills.days,
        comparisonOperator: ComparisonOperator.LESS_THAN_THRESHOLD,
        treatMissingData: TreatMissingData.BREACHING,
      });
      if (props.topic) noDrill.addAlarmAction(new SnsAction(props.topic));
      if (drills.rtoMinutes) {
        // No drill is the alarm above; this one is a drill that restored, but slower than the objective.
        const slow = new Alarm(this, `${cluster.name}-DrillRtoOverObjective`, {
          alarmDescription:
            `A restore drill of ${cluster.name} took longer than its ${drills.rtoMinutes}-minute RTO objective, from the ` +
            'request to the restored server accepting connections. Its restore record (pgsnap restores show) has each ' +
            "phase's time: the volumes, the instance, or the WAL to replay since the backup.",
          metric: clusterMetric(cluster.name, restoreMetrics.drillRtoSeconds, 'Maximum', Duration.days(1)),
          threshold: drills.rtoMinutes * 60,
          evaluationPeriods: 1,
          comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
          treatMissingData: TreatMissingData.NOT_BREACHING,
        });
        if (props.topic) slow.addAlarmAction(new SnsAction(props.topic));
      }
    }
  }
}
