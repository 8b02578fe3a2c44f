/**
 * The drill host kit of one cluster, so that an operator names only an AMI
 * (and the VPC and subnet it runs in) to drill: the instance profile of the
 * drill instance, its security group and its launch template.
 *
 * The role holds the cluster's restore target policy, the one definition of
 * what a restore target may do (infra/guards/restore-target-policy.ts: read
 * the cluster's repository prefix, decrypt through S3, answer its task, write
 * nothing), and AmazonSSMManagedInstanceCore for Run Command. Its name begins
 * with `pgsnap-` (the find-restore-instance Lambda may pass only such roles).
 * The launch template requires IMDSv2 and gives no public address: its one
 * network interface carries the group and `AssociatePublicIpAddress: false`,
 * and the restore puts the request's subnet into it (domain/restore/instance.ts).
 * The DR stack makes the same kit in the DR region with the DR policy.
 */
import { CfnLaunchTemplate, CfnSecurityGroup } from 'aws-cdk-lib/aws-ec2';
import { CfnInstanceProfile, ManagedPolicy, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { acknowledge } from '../guards/acknowledge.ts';

export interface DrillKitProps {
  environment: string;
  cluster: string;
  /** The cluster's restore target policy (RestoreTargetPolicy), attached to the kit's role. */
  policy: ManagedPolicy;
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
    this.role = new Role(this, 'Role', {
      roleName: name,
      assumedBy: new ServicePrincipal('ec2.amazonaws.com'),
      description: `pgsnap: the drill instance of ${props.cluster}`,
      managedPolicies: [ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore')],
    });
    // Through the policy's own Roles list: the policy is the stack's, shared with the operators' targets.
    props.policy.attachToRole(this.role);
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
    acknowledge(this.role, {
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]':
        'the drill instance is driven through SSM Run Command, which needs the SSM agent managed policy',
    });
  }
}
