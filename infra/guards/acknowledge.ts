/**
 * cdk-nag findings that are accepted, each with its reason, attached to the
 * narrowest construct they concern. The ids are cdk-nag's exact finding ids:
 * a bracketed finding is covered only by its full id.
 */
import { type CfnElement, Stack, Token, Validations } from 'aws-cdk-lib';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { IConstruct } from 'constructs';

export function acknowledge(scope: IConstruct, findings: Record<string, string>): void {
  Validations.of(scope).acknowledge(...Object.entries(findings).map(([id, reason]) => ({ id, reason })));
}

/** How cdk-nag writes a resource's ARN attribute inside a finding id: `<LogicalId.Arn>`. */
export function arnReference(resource: IConstruct): string {
  return `<${Stack.of(resource).getLogicalId(resource.node.defaultChild as CfnElement)}.Arn>`;
}

/** A created bucket appears in findings by its logical id, an imported one by its literal ARN. */
export function bucketFinding(bucket: IBucket): string {
  return bucket.node.defaultChild ? arnReference(bucket) : `arn:<AWS::Partition>:s3:::${bucket.bucketName}`;
}

/**
 * An ARN as cdk-nag writes it inside a finding id: the partition always as
 * `<AWS::Partition>`, region and account as given to the stack, or as
 * `<AWS::Region>`/`<AWS::AccountId>` when the stack is environment-agnostic.
 */
export function nagArn(
  scope: IConstruct,
  service: string,
  resource: string,
  options: { account?: boolean } = {},
): string {
  const stack = Stack.of(scope);
  const region = Token.isUnresolved(stack.region) ? '<AWS::Region>' : stack.region;
  const account =
    options.account === false ? '' : Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account;
  return `arn:<AWS::Partition>:${service}:${region}:${account}:${resource}`;
}

export const wildcardReasons = {
  xray: 'X-Ray tracing (xray:PutTraceSegments, xray:PutTelemetryRecords) supports no resource-level permissions',
  lambdaVersions:
    'Step Functions (and Scheduler) may invoke any version of this one function, as CDK grants it',
} as const;
