/**
 * The rights of hosts found by tags (config `discover`): a host tagged
 * `pgsnap:cluster=<name>` writes `<name>`'s WAL and artifacts, and no other
 * cluster's, with no redeploy and no per-cluster resource.
 *
 * A tag on the instance cannot be matched by S3: S3 sees the role session,
 * and `aws:PrincipalTag` of an instance-profile session is the role's own
 * tags (agent-host-policy.ts). So the cluster travels as a *session* tag set
 * by a principal the host does not control:
 *
 * - the discovered-host role (`pgsnap-<env>-discovered-host`, with its
 *   instance profile) is what operators launch tagged hosts with. It trusts
 *   only ec2.amazonaws.com, answers task tokens, puts archive-health metrics
 *   and calls the vendor; it has no S3 right and cannot tag anything;
 * - the credential vendor, a Lambda behind a function URL with AWS_IAM auth,
 *   takes the instance id from the caller's session name, reads the instance's
 *   tag from EC2 (domain/host-credentials.ts) and assumes
 * - the discovered-cluster role (`pgsnap-<env>-discovered-cluster`) with the
 *   session tag `pgsnap:cluster=<tag value>`. Its policy is the listed
 *   clusters' host policy written once with `${aws:PrincipalTag/pgsnap:cluster}`
 *   (agentHostStatements). It trusts only the vendor's role, for sts:AssumeRole
 *   and sts:TagSession: passing session tags needs sts:TagSession in the trust
 *   policy (IAM User Guide, "Pass session tags in AWS STS", permissions
 *   required to add session tags, https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html).
 *
 * Its limit: whoever may tag an instance decides which cluster it serves.
 * That is an operator's right (ec2:CreateTags), which no pgsnap host holds.
 */
import { Duration } from 'aws-cdk-lib';
import {
  ArnPrincipal,
  InstanceProfile,
  ManagedPolicy,
  Policy,
  PolicyStatement,
  Role,
  ServicePrincipal,
} from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { type FunctionUrl, FunctionUrlAuthType } from 'aws-cdk-lib/aws-lambda';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import type { ClusterCatalog } from '../config/cluster-catalog.ts';
import { HandlerFunction } from '../lambda/handler-function.ts';
import { acknowledge, bucketFinding } from './acknowledge.ts';
import { agentHostStatements, hostMetricsStatement, sendTaskStatement } from './agent-host-policy.ts';

/** The session tag the vendor sets and the discovered-cluster role's policy reads (domain/host-credentials.ts). */
// biome-ignore lint/suspicious/noTemplateCurlyInString: an IAM policy variable, resolved by IAM, not by JavaScript
export const clusterPrincipalTag = '${aws:PrincipalTag/pgsnap:cluster}';

export interface DiscoveredHostsProps {
  environment: string;
  /** The stack's repository bucket, where discovered clusters live under `prefix`. */
  bucket: IBucket;
  prefix: string;
  repositoryKey?: IKey | undefined;
  catalog: ClusterCatalog;
}

export class DiscoveredHosts extends Construct {
  /** What tagged hosts are launched with. */
  readonly hostRole: Role;
  readonly instanceProfile: InstanceProfile;
  /** What the vendor hands out, tagged with the host's cluster. */
  readonly clusterRole: Role;
  readonly vendor: HandlerFunction;
  readonly url: FunctionUrl;

  constructor(scope: Construct, id: string, props: DiscoveredHostsProps) {
    super(scope, id);
    const hostRoleName = `pgsnap-${props.environment}-discovered-host`;
    this.hostRole = new Role(this, 'HostRole', {
      roleName: hostRoleName,
      description: `pgsnap hosts found by tags (${props.environment}): task tokens, metrics, and the credential vendor`,
      assumedBy: new ServicePrincipal('ec2.amazonaws.com'),
      // Run Command reaches the host through the SSM agent, which needs this (as any pgsnap host's role does).
      managedPolicies: [ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore')],
    });
    this.instanceProfile = new InstanceProfile(this, 'InstanceProfile', {
      instanceProfileName: hostRoleName,
      role: this.hostRole,
    });

    this.vendor = new HandlerFunction(this, 'Vendor', {
      handler: 'vend-credentials',
      description: "Gives a host found by tags its own cluster's credentials (session-tagged)",
      timeout: Duration.seconds(15),
    });
    const vendorRole = this.vendor.role!;
    this.clusterRole = new Role(this, 'ClusterRole', {
      roleName: `pgsnap-${props.environment}-discovered-cluster`,
      description: `pgsnap hosts found by tags (${props.environment}): the repository of the cluster the session tag names`,
      // sts:AssumeRole and sts:TagSession, from the vendor's role alone.
      assumedBy: new ArnPrincipal(vendorRole.roleArn).withSessionTags(),
      maxSessionDuration: Duration.hours(1),
    });
    const clusterPolicy = new Policy(this, 'ClusterPolicy', {
      statements: agentHostStatements(
        this,
        { bucket: props.bucket, prefix: props.prefix, cluster: clusterPrincipalTag },
        { repositoryKey: props.repositoryKey, withSendTask: false },
      ),
    });
    this.clusterRole.attachInlinePolicy(clusterPolicy);
    acknowledge(clusterPolicy, {
      // cdk-nag writes the policy variable as <aws:PrincipalTag/pgsnap:cluster>.
      [`AwsSolutions-IAM5[Resource::${bucketFinding(props.bucket)}/${props.prefix}<aws:PrincipalTag/pgsnap:cluster>/*]`]:
        "a discovered host reads and writes WAL and artifacts under its own cluster's prefix only: the session tag the vendor sets from the instance's tag",
    });

    this.vendor.addEnvironment('PGSNAP_DISCOVERED_HOST_ROLE', hostRoleName);
    this.vendor.addEnvironment('PGSNAP_DISCOVERED_CLUSTER_ROLE_ARN', this.clusterRole.roleArn);
    props.catalog.grantRead(this.vendor);
    this.vendor.addToRolePolicy(
      new PolicyStatement({
        actions: ['sts:AssumeRole', 'sts:TagSession'],
        resources: [this.clusterRole.roleArn],
      }),
    );
    // DescribeInstances supports no resource-level permissions (it only reads).
    this.vendor.addToRolePolicy(
      new PolicyStatement({ actions: ['ec2:DescribeInstances'], resources: ['*'] }),
    );

    this.url = this.vendor.addFunctionUrl({ authType: FunctionUrlAuthType.AWS_IAM });
    // Function URLs created since October 2025 need both lambda:InvokeFunctionUrl and lambda:InvokeFunction
    // (Lambda Developer Guide, "Control access to Lambda function URLs"). The function's resource policy
    // names the discovered-host role and no one else; the vendor refuses any other caller anyway.
    const hostPrincipal = new ArnPrincipal(this.hostRole.roleArn);
    this.vendor.addPermission('HostsInvokeUrl', {
      principal: hostPrincipal,
      action: 'lambda:InvokeFunctionUrl',
      functionUrlAuthType: FunctionUrlAuthType.AWS_IAM,
    });
    this.vendor.addPermission('HostsInvokeViaUrl', {
      principal: hostPrincipal,
      action: 'lambda:InvokeFunction',
      invokedViaFunctionUrl: true,
    });
    // lambda:InvokeFunction is granted above by the resource policy, through the URL only: a plain Invoke
    // could carry a forged requestContext naming another instance.
    const hostPolicy = new Policy(this, 'HostPolicy', {
      statements: [
        sendTaskStatement(),
        hostMetricsStatement(),
        new PolicyStatement({
          actions: ['lambda:InvokeFunctionUrl'],
          resources: [this.vendor.functionArn],
          conditions: { StringEquals: { 'lambda:FunctionUrlAuthType': 'AWS_IAM' } },
        }),
      ],
    });
    this.hostRole.attachInlinePolicy(hostPolicy);
    acknowledge(this.hostRole, {
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]':
        "the SSM agent's own rights, AWS's maintained minimum for Run Command to reach the host",
    });
    acknowledge(hostPolicy, {
      'AwsSolutions-IAM5[Resource::*]':
        'SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat support no resource-level permissions; the task token scopes them. ' +
        "PutMetricData has none either; it is limited to the hosts' namespace (cloudwatch:namespace)",
    });
  }
}
