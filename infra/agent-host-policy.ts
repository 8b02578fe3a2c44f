/**
 * The managed policy operators attach to the database host's instance role
 * (next to AmazonSSMManagedInstanceCore): the agent answers the state machine
 * itself (SendTaskSuccess/Failure/Heartbeat) and reads and writes the
 * repository under its clusters' prefixes.
 */
import { Stack } from 'aws-cdk-lib';
import { ManagedPolicy, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledge, bucketFinding } from './acknowledge.ts';

export interface AgentHostPolicyProps {
  stateMachineArn: string;
  repositories: Array<{ bucket: IBucket; prefix: string; cluster: string }>;
  /** The key of a repository bucket this stack created. */
  repositoryKey?: IKey;
}

export class AgentHostPolicy extends Construct {
  readonly policy: ManagedPolicy;

  constructor(scope: Construct, id: string, props: AgentHostPolicyProps) {
    super(scope, id);
    this.policy = new ManagedPolicy(this, 'Policy', {
      description: 'pgsnap agent on a database host: answer the backup state machine, use the repository',
      statements: [
        // SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat support no resource-level permissions and no
        // condition keys (Service Authorization Reference, "Actions, resources, and condition keys for AWS Step
        // Functions": their resource types column is empty): only "*" matches, and a statement naming the state
        // machine grants nothing. What limits them is the token itself, which only the host a step ran on gets.
        new PolicyStatement({
          actions: ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
          resources: ['*'],
        }),
        ...props.repositories.flatMap(({ bucket, prefix, cluster }) => [
          new PolicyStatement({
            actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'],
            resources: [bucket.arnForObjects(`${prefix}${cluster}/*`)],
          }),
          new PolicyStatement({
            actions: ['s3:ListBucket'],
            resources: [bucket.bucketArn],
            conditions: { StringLike: { 's3:prefix': [`${prefix}${cluster}/*`] } },
          }),
        ]),
      ],
    });
    acknowledge(this, {
      'AwsSolutions-IAM5[Resource::*]':
        'SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat support no resource-level permissions; the task token scopes them',
      ...Object.fromEntries(
        props.repositories.map(({ bucket, prefix, cluster }) => [
          `AwsSolutions-IAM5[Resource::${bucketFinding(bucket)}/${prefix}${cluster}/*]`,
          `the agent of ${cluster} reads and writes WAL and artifacts under its own cluster's prefix, and nowhere else`,
        ]),
      ),
    });
    if (props.repositoryKey) {
      this.policy.addStatements(
        new PolicyStatement({
          actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
          resources: [props.repositoryKey.keyArn],
          conditions: { StringEquals: { 'kms:ViaService': `s3.${Stack.of(this).region}.amazonaws.com` } },
        }),
      );
    }
  }
}
