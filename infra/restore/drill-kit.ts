/**
 * The drill host kit of one cluster, so that an operator names only an AMI
 * (and the VPC and subnet it runs in) to drill: the instance profile of the
 * drill instance, its security group and its launch template.
 *
 * The role reads the cluster's repository prefix and nothing else, decrypts
 * with the repository key, answers the restore state machine (SendTask*), and
 * has AmazonSSMManagedInstanceCore for Run Command. Its name begins with
 * `pgsnap-` (the find-restore-instance Lambda may pass only such roles).
 * The launch template requires IMDSv2 and gives no public address: its one
 * network interface carries the group and `AssociatePublicIpAddress: false`,
 * and the restore puts the request's subnet into it (domain/restore/instance.ts).
 * A restore target's read-only policy in infra/guards may replace the policy
 * here once both exist (merge note).
 */
import { CfnLaunchTemplate, CfnSecurityGroup } from 'aws-cdk-lib/aws-ec2';
import {
  CfnInstanceProfile,
  ManagedPolicy,
  PolicyStatement,
  Role,
  ServicePrincipal,
} from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledge, bucketFinding } from '../guards/acknowledge.ts';

export interface DrillKitProps {
  environment: string;
  cluster: string;
  bucket: IBucket;
  /** `<prefix>` of the cluster's repository (the cluster's objects are under `<prefix><cluster>/`). */
  prefix: string;
  key?: IKey | undefined;
  restoreStateMachineArn: string;
  kit: { vpcId: string; imageId: string; instanceType: string };
}

/** `pgsnap-<environment>-drill-<cluster>`, within IAM's and EC2's 64 and 128 characters. */
export function drillKitName(environment: string, cluster: string): string {
  return `pgsnap-${environment}-drill-${cluster}`.slice(0, 64);
}

export class DrillKit extends Construct {
  readonly role: Role;
  readonly launchTemplateName: string;

  constructor(scope: Construct, id: string, props: DrillKitProps) {
    super(scope, id);
    const name = drillKitName(props.environment, props.cluster);
    const root = `${props.prefix}${props.cluster}`;
    const policy = new ManagedPolicy(this, 'RestorePolicy', {
      description: `pgsnap: a drill host of ${props.cluster} reads its repository and answers the restore state machine`,
      statements: [
        new PolicyStatement({
          actions: ['s3:GetObject'],
          resources: [props.bucket.arnForObjects(`${root}/*`)],
        }),
        new PolicyStatement({
          actions: ['s3:ListBucket'],
          resources: [props.bucket.bucketArn],
          conditions: { StringLike: { 's3:prefix': [`${root}/*`] } },
        }),
        new PolicyStatement({
          actions: ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
          resources: [props.restoreStateMachineArn],
        }),
        ...(props.key
          ? [new PolicyStatement({ actions: ['kms:Decrypt'], resources: [props.key.keyArn] })]
          : []),
      ],
    });
    this.role = new Role(this, 'Role', {
      roleName: name,
      assumedBy: new ServicePrincipal('ec2.amazonaws.com'),
      description: `pgsnap: the drill instance of ${props.cluster}`,
      managedPolicies: [policy, ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore')],
    });
    const profile = new CfnInstanceProfile(this, 'Profile', {
      instanceProfileName: name,
      roles: [this.role.roleName],
    });
    // L1: the VPC is known by its id alone, and an L2 group would want its zones.
    const group = new CfnSecurityGroup(this, 'Group', {
      vpcId: props.kit.vpcId,
      groupDescription: `pgsnap drill hosts of ${props.cluster}: no inbound, HTTPS out to SSM, S3, STS, Step Functions, KMS, CloudWatch`,
      securityGroupEgress: [
        {
          ipProtocol: 'tcp',
          fromPort: 443,
          toPort: 443,
          cidrIp: '0.0.0.0/0',
          description: 'AWS endpoints over HTTPS',
        },
      ],
    });
    this.launchTemplateName = name;
    new CfnLaunchTemplate(this, 'Template', {
      launchTemplateName: name,
      launchTemplateData: {
        imageId: props.kit.imageId,
        instanceType: props.kit.instanceType,
        iamInstanceProfile: { arn: profile.attrArn },
        metadataOptions: { httpTokens: 'required', httpEndpoint: 'enabled', httpPutResponseHopLimit: 1 },
        networkInterfaces: [{ deviceIndex: 0, associatePublicIpAddress: false, groups: [group.attrGroupId] }],
        ebsOptimized: true,
        tagSpecifications: [{ resourceType: 'instance', tags: [{ key: 'Name', value: name }] }],
      },
    });
    acknowledge(policy, {
      [`AwsSolutions-IAM5[Resource::${bucketFinding(props.bucket)}/${root}/*]`]: `reads ${props.cluster}'s repository (WAL, artifacts, restore records) under its prefix only`,
    });
    acknowledge(this.role, {
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]':
        'the drill instance is driven through SSM Run Command, which needs the SSM agent managed policy',
    });
  }
}
