/**
 * IAM as AWS would evaluate it for the deployed pgsnap stacks: the roles of
 * the synthesized templates with their identity policies, the resource
 * policies (KMS key policies, bucket policies, role trust policies) found by
 * the ARN a request names, and @cloud-copilot/iam-simulate deciding each
 * request the way AWS's policy evaluation logic does (same-account and
 * cross-account, KMS's key-policy-first rule included).
 */
import { runSimulation, type Simulation } from '@cloud-copilot/iam-simulate';
import type { ResolvedTemplate } from './cloudformation.ts';

type PolicyDocument = { Version?: string; Statement: unknown[] };

export interface Principal {
  /** A readable name for test titles: the role name. */
  name: string;
  arn: string;
  account: string;
  policies: Array<{ name: string; policy: PolicyDocument }>;
}

export interface IamRequest {
  action: string;
  resource: string;
  /** Condition keys AWS would set for this request, besides the principal's own. */
  context?: Record<string, string | string[]>;
}

export type Decision = 'Allowed' | 'ExplicitlyDenied' | 'ImplicitlyDenied';

const accountOfArn = (arn: string): string => arn.split(':')[4] ?? '';

/** The roles of a template, each with the identity policies CloudFormation attaches to it. */
export function rolesOf(template: ResolvedTemplate): Principal[] {
  const attached = [
    ...template.ofType('AWS::IAM::Policy'),
    ...template.ofType('AWS::IAM::ManagedPolicy'),
  ].map(([id, r]) => ({
    id,
    roles: (template.resolve(r.Properties?.Roles ?? []) as string[]) ?? [],
    policy: template.resolve(r.Properties?.PolicyDocument) as PolicyDocument,
  }));
  return template.ofType('AWS::IAM::Role').map(([id, r]) => {
    const name = template.ref(id);
    const inline = (
      (r.Properties?.Policies as Array<{ PolicyName: string; PolicyDocument: unknown }>) ?? []
    ).map((p) => ({ name: p.PolicyName, policy: template.resolve(p.PolicyDocument) as PolicyDocument }));
    return {
      name,
      arn: template.getAtt(id, 'Arn'),
      account: template.where.account,
      // AWS managed policies (AWSLambdaBasicExecutionRole) only reach the logs; they are left out.
      policies: [
        ...inline,
        ...attached.filter((p) => p.roles.includes(name)).map((p) => ({ name: p.id, policy: p.policy })),
      ],
    };
  });
}

export function roleNamed(roles: Principal[], predicate: (name: string) => boolean, what: string): Principal {
  const found = roles.filter((r) => predicate(r.name));
  if (found.length !== 1)
    throw new Error(`expected one ${what} role, found ${found.map((r) => r.name).join(', ')}`);
  return found[0]!;
}

/** The deployed stacks of one environment, as one world of principals and resource policies. */
export class IamWorld {
  private readonly resourcePolicies = new Map<string, PolicyDocument>();
  /** The aliases of each key, which KMS puts in kms:ResourceAliases. */
  private readonly aliases = new Map<string, string[]>();
  readonly roles: Principal[];

  /** `outside`: resource policies of resources the templates only refer to (a volume key), by ARN. */
  constructor(
    readonly templates: ResolvedTemplate[],
    outside: Record<string, PolicyDocument> = {},
  ) {
    this.roles = templates.flatMap(rolesOf);
    for (const [arn, policy] of Object.entries(outside)) this.resourcePolicies.set(arn, policy);
    for (const t of templates) {
      for (const [, alias] of t.ofType('AWS::KMS::Alias')) {
        const keyId = t.resolve(alias.Properties?.TargetKeyId) as string;
        const keyArn = keyId.startsWith('arn:')
          ? keyId
          : `arn:aws:kms:${t.where.region}:${t.where.account}:key/${keyId}`;
        this.aliases.set(keyArn, [
          ...(this.aliases.get(keyArn) ?? []),
          alias.Properties?.AliasName as string,
        ]);
      }
      for (const [id, key] of t.ofType('AWS::KMS::Key')) {
        this.resourcePolicies.set(
          t.getAtt(id, 'Arn'),
          t.resolve(key.Properties?.KeyPolicy) as PolicyDocument,
        );
      }
      for (const [, policy] of t.ofType('AWS::S3::BucketPolicy')) {
        const bucket = t.resolve(policy.Properties?.Bucket) as string;
        this.resourcePolicies.set(
          `arn:aws:s3:::${bucket}`,
          t.resolve(policy.Properties?.PolicyDocument) as PolicyDocument,
        );
      }
      for (const [id, role] of t.ofType('AWS::IAM::Role')) {
        this.resourcePolicies.set(
          t.getAtt(id, 'Arn'),
          t.resolve(role.Properties?.AssumeRolePolicyDocument) as PolicyDocument,
        );
      }
    }
  }

  /** The resource policy that governs `arn`: a bucket's for its objects too. */
  resourcePolicyOf(arn: string): PolicyDocument | undefined {
    if (arn.startsWith('arn:aws:s3:::'))
      return this.resourcePolicies.get(`arn:aws:s3:::${arn.slice(13).split('/')[0]}`);
    return this.resourcePolicies.get(arn);
  }

  /**
   * The account a resource lives in. S3 ARNs carry none, so a bucket's is its
   * template's. `*` and EC2 snapshot ARNs carry none either: the caller's own
   * (a snapshot shared from another account is authorized by the sharing, an
   * EC2 attribute, not by a resource policy; IAM checks the caller's policies).
   */
  private accountOf(arn: string, principal: Principal): string {
    if (!arn.startsWith('arn:aws:s3:::')) return accountOfArn(arn) || principal.account;
    const bucket = arn.slice(13).split('/')[0]!;
    for (const t of this.templates) {
      if (t.ofType('AWS::S3::Bucket').some(([id]) => t.ref(id) === bucket)) return t.where.account;
    }
    throw new Error(`bucket ${bucket} is in none of the templates; give its account`);
  }

  async decide(principal: Principal, request: IamRequest): Promise<Decision> {
    const simulation: Simulation = {
      request: {
        principal: principal.arn,
        action: request.action,
        resource: { resource: request.resource, accountId: this.accountOf(request.resource, principal) },
        contextVariables: {
          'aws:PrincipalArn': principal.arn,
          'aws:PrincipalAccount': principal.account,
          'aws:SecureTransport': 'true',
          ...(this.aliases.has(request.resource)
            ? { 'kms:ResourceAliases': this.aliases.get(request.resource)! }
            : {}),
          ...request.context,
        },
      },
      identityPolicies: principal.policies,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      resourcePolicy: this.resourcePolicyOf(request.resource),
    };
    const result = await runSimulation(simulation, {});
    if (result.resultType === 'error') {
      throw new Error(
        `the simulation of ${request.action} on ${request.resource} is invalid: ${JSON.stringify(result.errors)}`,
      );
    }
    return result.overallResult as Decision;
  }
}
