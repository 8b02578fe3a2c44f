/**
 * A synthesized template read as AWS would see it once deployed: the
 * intrinsics the pgsnap stacks use (Ref, Fn::GetAtt, Fn::Join, Fn::Sub,
 * Fn::Select, Fn::Split) resolved to concrete names and ARNs in a fixed
 * account and region, so that an IAM evaluator can match them. Names
 * CloudFormation would generate are derived from the logical id; a KMS key id
 * is a stable UUID-shaped string derived from it. Anything else throws: an
 * intrinsic this does not know must be added here, not guessed.
 */
import { createHash } from 'node:crypto';

export interface CfnResource {
  Type: string;
  Properties?: Record<string, unknown>;
}
export interface CfnTemplate {
  Resources: Record<string, CfnResource>;
}

export interface DeployedIn {
  account: string;
  region: string;
  stackName: string;
  /** A nested stack's parameters, as its parent passes them (already resolved). */
  parameters?: Record<string, string>;
}

/** What CloudFormation would name a resource that the template leaves unnamed. */
function physicalName(logicalId: string, resource: CfnResource): string {
  const props = resource.Properties ?? {};
  const given = {
    'AWS::IAM::Role': props.RoleName,
    'AWS::S3::Bucket': props.BucketName,
    'AWS::Lambda::Function': props.FunctionName,
    'AWS::StepFunctions::StateMachine': props.StateMachineName,
    'AWS::SSM::Document': props.Name,
    'AWS::IAM::ManagedPolicy': props.ManagedPolicyName,
    'AWS::SNS::Topic': props.TopicName,
    'AWS::Logs::LogGroup': props.LogGroupName,
  }[resource.Type];
  if (typeof given === 'string') return given;
  // Bucket names are lower case; the others keep the logical id, as CloudFormation's generated names start with it.
  return resource.Type === 'AWS::S3::Bucket' ? `generated-${logicalId.toLowerCase()}` : `gen-${logicalId}`;
}

/** A KMS key id: the same for the same logical id, shaped like the UUIDs KMS hands out. */
export function keyIdOf(logicalId: string): string {
  const h = createHash('sha256').update(logicalId).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export class ResolvedTemplate {
  constructor(
    readonly template: CfnTemplate,
    readonly where: DeployedIn,
  ) {}

  resource(logicalId: string): CfnResource {
    const found = this.template.Resources[logicalId];
    if (!found) throw new Error(`no resource ${logicalId} in ${this.where.stackName}`);
    return found;
  }

  /** Resources of `type`, by logical id. */
  ofType(type: string): Array<[string, CfnResource]> {
    return Object.entries(this.template.Resources).filter(([, r]) => r.Type === type);
  }

  /** Ref: pseudo parameters, and for each resource type what CloudFormation returns. */
  ref(name: string): string {
    const { account, region, stackName } = this.where;
    const pseudo: Record<string, string> = {
      'AWS::Partition': 'aws',
      'AWS::Region': region,
      'AWS::AccountId': account,
      'AWS::StackName': stackName,
      'AWS::URLSuffix': 'amazonaws.com',
    };
    if (pseudo[name]) return pseudo[name];
    const parameter = this.where.parameters?.[name];
    if (parameter !== undefined) return parameter;
    const resource = this.resource(name);
    switch (resource.Type) {
      case 'AWS::KMS::Key':
        return keyIdOf(name);
      case 'AWS::StepFunctions::StateMachine':
      case 'AWS::IAM::ManagedPolicy':
      case 'AWS::SNS::Topic':
        return this.getAtt(name, 'Arn');
      default:
        return physicalName(name, resource);
    }
  }

  getAtt(name: string, attribute: string): string {
    const { account, region } = this.where;
    const resource = this.resource(name);
    const physical = physicalName(name, resource);
    const arns: Record<string, string> = {
      'AWS::IAM::Role': `arn:aws:iam::${account}:role/${physical}`,
      'AWS::S3::Bucket': `arn:aws:s3:::${physical}`,
      'AWS::KMS::Key': `arn:aws:kms:${region}:${account}:key/${keyIdOf(name)}`,
      'AWS::Lambda::Function': `arn:aws:lambda:${region}:${account}:function:${physical}`,
      'AWS::StepFunctions::StateMachine': `arn:aws:states:${region}:${account}:stateMachine:${physical}`,
      'AWS::IAM::ManagedPolicy': `arn:aws:iam::${account}:policy/${physical}`,
      'AWS::SNS::Topic': `arn:aws:sns:${region}:${account}:${physical}`,
      'AWS::Logs::LogGroup': `arn:aws:logs:${region}:${account}:log-group:${physical}:*`,
      'AWS::Events::EventBus': `arn:aws:events:${region}:${account}:event-bus/${physical}`,
      'AWS::DynamoDB::Table': `arn:aws:dynamodb:${region}:${account}:table/${physical}`,
    };
    if (attribute === 'Arn' && arns[resource.Type]) return arns[resource.Type]!;
    if (attribute === 'Name' && resource.Type === 'AWS::StepFunctions::StateMachine') return physical;
    throw new Error(`Fn::GetAtt ${name}.${attribute} (${resource.Type}) is not known to the resolver`);
  }

  /** `value` with every intrinsic replaced by what it evaluates to. */
  resolve(value: unknown): unknown {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (value === null || typeof value !== 'object') return value;
    const entries = Object.entries(value as Record<string, unknown>);
    const [first] = entries;
    if (entries.length === 1 && first && (first[0] === 'Ref' || first[0].startsWith('Fn::'))) {
      return this.intrinsic(first[0], first[1]);
    }
    return Object.fromEntries(entries.map(([k, v]) => [k, this.resolve(v)]));
  }

  private intrinsic(name: string, argument: unknown): unknown {
    switch (name) {
      case 'Ref':
        return this.ref(argument as string);
      case 'Fn::GetAtt': {
        const [id, attribute] =
          typeof argument === 'string'
            ? (argument.split('.') as [string, string])
            : (argument as [string, string]);
        return this.getAtt(id, attribute);
      }
      case 'Fn::Join': {
        const [separator, parts] = argument as [string, unknown[]];
        return (this.resolve(parts) as unknown[]).map(String).join(separator);
      }
      case 'Fn::Select': {
        const [index, list] = argument as [number | string, unknown];
        return (this.resolve(list) as unknown[])[Number(index)];
      }
      case 'Fn::Split': {
        const [separator, text] = argument as [string, unknown];
        return String(this.resolve(text)).split(separator);
      }
      case 'Fn::Sub': {
        const [text, variables] = (typeof argument === 'string' ? [argument, {}] : argument) as [
          string,
          Record<string, unknown>,
        ];
        return text.replace(/\$\{([^}!]+)\}/g, (_, key: string) => {
          if (key in variables) return String(this.resolve(variables[key]));
          const [id, attribute] = key.split('.');
          return attribute ? this.getAtt(id!, attribute) : this.ref(id!);
        });
      }
      default:
        throw new Error(`${name} is not known to the resolver`);
    }
  }
}
