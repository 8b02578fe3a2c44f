/**
 * Lambda's 4 KB for all of a function's environment variables (Lambda quotas:
 * "Function environment variables: 4 KB, for all environment variables
 * associated with the function, in aggregate"), measured as deployed. In a
 * synthesized template a bucket name or an ARN is a reference (`{"Ref": …}`,
 * a CDK token of about 20 characters), not the value Lambda stores: a check
 * of the token's length passes clusters that `cdk deploy` then refuses. Here
 * each reference counts as the longest value it realistically deploys as.
 */
import { Stack } from 'aws-cdk-lib';
import { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import type { IConstruct, IValidation } from 'constructs';

export const maxEnvironmentBytes = 4 * 1024;

/**
 * The deployed length of a reference. Bucket names go to 63 characters; a generated name is the stack's,
 * the construct path's and a suffix (CloudFormation, Name type); an ARN adds the partition, a Region such
 * as `ap-southeast-2`, a 12-digit account and the resource type to the name.
 */
const deployedLength = {
  bucketName: 63,
  name: 128,
  arn: 40 + 128,
  pseudo: { 'AWS::Region': 14, 'AWS::AccountId': 12, 'AWS::Partition': 10, 'AWS::URLSuffix': 13 },
} as const;

type Resolved = string | number | boolean | null | Resolved[] | { [key: string]: Resolved };

/** The deployed length of a resolved template value; `typeOf` gives a logical id's resource type. */
export function deployedLengthOf(value: Resolved, typeOf: (logicalId: string) => string | undefined): number {
  if (typeof value === 'string') return Buffer.byteLength(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value).length;
  if (Array.isArray(value)) return value.reduce<number>((sum, v) => sum + deployedLengthOf(v, typeOf), 0);
  const [[fn, args] = []] = Object.entries(value);
  if (fn === 'Ref' && typeof args === 'string') {
    if (args in deployedLength.pseudo)
      return deployedLength.pseudo[args as keyof typeof deployedLength.pseudo];
    const type = typeOf(args);
    if (type === 'AWS::S3::Bucket') return deployedLength.bucketName;
    // Ref of a state machine, a topic, a managed policy: its ARN.
    if (type && /StepFunctions::StateMachine|SNS::Topic|IAM::ManagedPolicy/.test(type))
      return deployedLength.arn;
    return deployedLength.name;
  }
  if (fn === 'Fn::GetAtt') return deployedLength.arn;
  if (fn === 'Fn::Join' && Array.isArray(args)) {
    const [separator, parts] = args as [string, Resolved[]];
    return Math.max(0, parts.length - 1) * separator.length + deployedLengthOf(parts, typeOf);
  }
  if (fn === 'Fn::Sub' || fn === 'Fn::ImportValue' || fn === 'Fn::Select') return deployedLength.arn;
  return deployedLengthOf(Object.values(value), typeOf);
}

/** The validation: every function under `scope`, its variables' names and deployed values together. */
export class LambdaEnvironmentSize implements IValidation {
  constructor(private readonly scope: IConstruct) {}

  validate(): string[] {
    const stack = Stack.of(this.scope);
    const types = new Map<string, string>();
    const nodes = stack.node.findAll();
    for (const node of nodes) {
      const cfn = node as { cfnResourceType?: string; logicalId?: string };
      if (typeof cfn.cfnResourceType === 'string' && cfn.logicalId) {
        types.set(stack.resolve(cfn.logicalId) as string, cfn.cfnResourceType);
      }
    }
    const violations: string[] = [];
    for (const node of this.scope.node.findAll()) {
      if (!(node instanceof CfnFunction)) continue;
      const variables = (
        stack.resolve(node.environment) as { variables?: Record<string, Resolved> } | undefined
      )?.variables;
      if (!variables) continue;
      const bytes = Object.entries(variables).reduce(
        (sum, [name, value]) =>
          sum + Buffer.byteLength(name) + deployedLengthOf(value, (id) => types.get(id)),
        0,
      );
      if (bytes > maxEnvironmentBytes) {
        violations.push(
          `${node.node.path}: its environment variables come to about ${bytes} bytes as deployed; Lambda allows ` +
            `${maxEnvironmentBytes} for all of them (what grows with the clusters belongs in the catalog)`,
        );
      }
    }
    return violations;
  }
}
