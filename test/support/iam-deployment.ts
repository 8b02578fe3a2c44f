/**
 * Both stacks of an environment as test/infra/iam.test.ts evaluates them:
 * synthesized, resolved to concrete ARNs, and the IAM world (identities,
 * resource policies) built from them, per DR mode.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, type CfnElement, NestedStack, Stack } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { type EnvironmentInput, environmentSchema } from '../../infra/config/config.ts';
import { drNames } from '../../infra/dr/dr-config.ts';
import { DrStack } from '../../infra/dr-stack.ts';
import { HandlerFunction } from '../../infra/lambda/handler-function.ts';
import { PgsnapStack } from '../../infra/pgsnap-stack.ts';
import { ResolvedTemplate } from './cloudformation.ts';
import { IamWorld, type Principal, rolesOf } from './iam.ts';

export const source = { account: '111122223333', region: 'eu-west-1' };
export const drAccount = '444455556666';
export const drRegion = 'us-west-2';
export const externalId = 'pgsnap-prod-7f3a9c2e';

export function environment(dr: Record<string, unknown>): EnvironmentInput {
  return {
    name: 'prod',
    ...source,
    clusters: [
      {
        name: 'orders-db',
        instance: { instanceId: 'i-0123456789abcdef0' },
        volumeIds: ['vol-0a1b2c3d4e5f60001'],
        repository: { prefix: 'pgsnap/' },
        retention: { keepLast: 7, dr: { keepDays: 35 } },
        // Scheduled drills: the start-drill Lambda is deployed and its rights checked too.
        drills: {
          schedule: 'rate(7 days)',
          launch: { launchTemplate: 'pgsnap-drill', subnetId: 'subnet-0123456789abcdef0' },
        },
      },
      {
        name: 'billing-db',
        instance: { tags: { 'pgsnap:cluster': 'billing-db', role: 'primary' } },
        repository: { prefix: 'pgsnap/' },
        retention: { keepLast: 3 },
      },
    ],
    // Clusters found by tags too: the fleet schedule's start-fleet Lambda is deployed and checked.
    discover: { defaults: { prefix: 'fleet/', schedules: [{ name: 'hourly', expression: 'rate(1 hour)' }] } },
    dr: {
      ...dr,
      drills: {
        schedule: 'cron(0 7 ? * SAT *)',
        launch: { launchTemplate: 'pgsnap-dr-drill', subnetId: 'subnet-0fedcba9876543210' },
      },
    } as EnvironmentInput['dr'],
  };
}

export const modes = {
  'same-account DR (another region)': environment({ region: drRegion }),
  'cross-account DR': environment({
    account: drAccount,
    region: drRegion,
    externalId,
    snapshotLock: { mode: 'governance', days: 35 },
  }),
};

/** One cluster as the requests name it. */
export interface ClusterScope {
  name: string;
  instanceArn: string;
  /** The tags a host selected by tags carries (aws:ResourceTag on the instance). */
  instanceTags: Record<string, string>;
  volumeArn: string;
  sourceSnapshotArn: string;
  drSnapshotArn: string;
  /** `pgsnap/orders-db/` */
  prefix: string;
}

export interface Deployed {
  world: IamWorld;
  crossAccount: boolean;
  /** The configured DR snapshot lock, if any. */
  snapshotLock: { mode: string; days: number } | undefined;
  sourceTemplate: ResolvedTemplate;
  functions: Array<{ handler: string; role: Principal; arn: string }>;
  /** The DR stack's Lambdas (DR retention, restore from the DR copies), each acting as the DR account. */
  drFunctions: Array<{ handler: string; role: Principal; arn: string }>;
  /** The roles the source stack makes: none of them may delete anything in DR. */
  sourceRoles: Principal[];
  stateMachineRole: Principal;
  copier: Principal;
  /** The role that acts in DR: the DR account's copy role, or the copier itself in the same account. */
  drActor: Principal;
  drRoleArn: string;
  /** The database host of each cluster, with that cluster's host policy attached to its role. */
  hosts: Principal[];
  /** A restore or drill target of each cluster, with that cluster's restore target policy attached to its role. */
  restoreTargets: Principal[];
  /** The same in the DR account, with the DR stack's restore target policy of each copied cluster. */
  drRestoreTargets: Principal[];
  clusters: ClusterScope[];
  sourceBucketArn: string;
  sourceKeyArn: string;
  drAccount: string;
  drBucketArn: string;
  drKeyArn: string;
  /** A customer managed key of the source account that encrypts the volumes (not in the templates). */
  volumeKeyArn: string;
  documentArn: string;
  stateMachineArn: string;
  restoreStateMachineArn: string;
  drRestoreStateMachineArn: string;
  /** The pending-snapshot budget's DynamoDB table. */
  budgetTableArn: string;
  /** The key of each stack's cluster catalog in its bucket (infra/config/cluster-catalog.ts). */
  catalogKey: string;
  drCatalogKey: string;
}

export function logicalIdOf(stack: Stack, construct: IConstruct): string {
  return stack.getLogicalId((construct.node.defaultChild ?? construct) as CfnElement);
}

export function deploy(input: EnvironmentInput): Deployed {
  const outdir = mkdtempSync(join(tmpdir(), 'pgsnap-iam-'));
  try {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] }, outdir });
    const parsed = environmentSchema.parse(input);
    const sourceStack = new PgsnapStack(app, 'pgsnap-prod', { environment: parsed });
    const drStack = new DrStack(app, 'pgsnap-prod-dr', { environment: parsed });
    const assembly = app.synth();
    const names = drNames(parsed, parsed.dr!);
    const sourceTemplate = new ResolvedTemplate(assembly.getStackByName(sourceStack.stackName).template, {
      ...source,
      stackName: sourceStack.stackName,
    });
    const drTemplate = new ResolvedTemplate(assembly.getStackByName(drStack.stackName).template, {
      account: names.account,
      region: drRegion,
      stackName: drStack.stackName,
    });
    const volumeKeyArn = `arn:aws:kms:${source.region}:${source.account}:key/0b5e7c1d-2f3a-4b6c-8d9e-0f1a2b3c4d5e`;
    const world = new IamWorld([sourceTemplate, drTemplate], {
      // The default key policy: the account's IAM policies decide.
      [volumeKeyArn]: {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { AWS: `arn:aws:iam::${source.account}:root` },
            Action: 'kms:*',
            Resource: '*',
          },
        ],
      },
    });
    // Past 30 clusters the per-cluster policies are in nested stacks (infra/guards/cluster-shards.ts): each
    // resolved with the parameters its parent passes it.
    const nestedTemplates = new Map<Stack, ResolvedTemplate>();
    const sourceTemplateOf = (construct: IConstruct): [ResolvedTemplate, Stack] => {
      const stack = Stack.of(construct);
      if (!(stack instanceof NestedStack)) return [sourceTemplate, sourceStack];
      let template = nestedTemplates.get(stack);
      if (!template) {
        const resource = sourceTemplate.resource(logicalIdOf(sourceStack, stack.nestedStackResource!));
        const parameters = sourceTemplate.resolve(resource.Properties?.Parameters ?? {}) as Record<
          string,
          string
        >;
        template = new ResolvedTemplate(
          JSON.parse(readFileSync(join(assembly.directory, stack.templateFile), 'utf8')),
          { ...source, stackName: stack.node.path, parameters },
        );
        nestedTemplates.set(stack, template);
      }
      return [template, stack];
    };
    const roleOf = (construct: IConstruct, template = sourceTemplate, stack: Stack = sourceStack) => {
      const arn = template.getAtt(logicalIdOf(stack, construct), 'Arn');
      const role = world.roles.find((r) => r.arn === arn);
      if (!role) throw new Error(`no role ${arn}`);
      return role;
    };
    /** A role of `account` named `role`, with the managed policies of the templates attached. */
    const attached = (
      name: string,
      account: string,
      role: string,
      policies: Array<[ResolvedTemplate, Stack, IConstruct]>,
    ): Principal => ({
      name,
      arn: `arn:aws:iam::${account}:role/${role}`,
      account,
      policies: policies.map(([template, stack, policy]) => ({
        name: logicalIdOf(stack, policy),
        policy: template.resolve(
          template.resource(logicalIdOf(stack, policy)).Properties?.PolicyDocument,
        ) as never,
      })),
    });
    const functions = sourceStack.node
      .findAll()
      .filter((c): c is HandlerFunction => c instanceof HandlerFunction)
      .map((fn) => {
        const [template, stack] = sourceTemplateOf(fn);
        return {
          handler: fn.handlerName,
          role: roleOf(fn.role!),
          arn: template.getAtt(logicalIdOf(stack, fn), 'Arn'),
        };
      });
    const drFunctions = drStack.node
      .findAll()
      .filter((c): c is HandlerFunction => c instanceof HandlerFunction)
      .map((fn) => ({
        handler: fn.handlerName,
        role: roleOf(fn.role!, drTemplate, drStack),
        arn: drTemplate.getAtt(logicalIdOf(drStack, fn), 'Arn'),
      }));
    const pgsnap = sourceStack.pgsnap;
    const copier = world.roles.find((r) => r.name === names.copierRoleName)!;
    const drRoleArn = `arn:aws:iam::${names.account}:role/${names.roleName}`;
    const crossAccount = names.account !== source.account;
    const clusters = parsed.clusters.map((c, index) => ({
      name: c.name,
      instanceArn: `arn:aws:ec2:${source.region}:${source.account}:instance/${
        'instanceId' in c.instance ? c.instance.instanceId : `i-0ffffffffffff000${index}`
      }`,
      instanceTags: 'tags' in c.instance ? c.instance.tags : {},
      volumeArn: `arn:aws:ec2:${source.region}:${source.account}:volume/vol-0a1b2c3d4e5f6000${index}`,
      sourceSnapshotArn: `arn:aws:ec2:${source.region}::snapshot/snap-0a1b2c3d4e5f6000${index}`,
      drSnapshotArn: `arn:aws:ec2:${drRegion}::snapshot/snap-0d1b2c3d4e5f6000${index}`,
      prefix: `${c.repository.prefix}${c.name}/`,
    }));
    const catalogKeyOf = (stackName: string) => {
      const resources = Object.values(assembly.getStackByName(stackName).template.Resources) as Array<{
        Type: string;
        Properties: { Key: string };
      }>;
      return resources.find((r) => r.Type === 'Custom::PgsnapCatalog')!.Properties.Key;
    };
    return {
      catalogKey: catalogKeyOf(sourceStack.stackName),
      drCatalogKey: catalogKeyOf(drStack.stackName),
      world,
      crossAccount,
      snapshotLock: parsed.dr?.snapshotLock,
      sourceTemplate,
      functions,
      drFunctions,
      sourceRoles: rolesOf(sourceTemplate),
      stateMachineRole: roleOf(pgsnap.backup.stateMachine.role),
      copier,
      drActor: crossAccount ? world.roles.find((r) => r.arn === drRoleArn)! : copier,
      drRoleArn,
      hosts: parsed.clusters.map((c) => ({
        name: `the database host of ${c.name}`,
        arn: `arn:aws:iam::${source.account}:role/${c.name}-host`,
        account: source.account,
        policies: [
          {
            name: `AgentHostPolicy-${c.name}`,
            policy: (() => {
              const policy = pgsnap.hostPolicy.policies.get(c.name)!;
              const [template, stack] = sourceTemplateOf(policy);
              return template.resolve(
                template.resource(logicalIdOf(stack, policy)).Properties?.PolicyDocument,
              );
            })() as never,
          },
        ],
      })),
      restoreTargets: parsed.clusters.map((c) =>
        attached(`a restore target of ${c.name}`, source.account, `${c.name}-restore`, [
          [
            ...sourceTemplateOf(sourceStack.pgsnap.restoreTargetPolicy.policies.get(c.name)!),
            sourceStack.pgsnap.restoreTargetPolicy.policies.get(c.name)!,
          ],
        ]),
      ),
      drRestoreTargets: parsed.clusters
        .filter((c) => c.copyToDr)
        .map((c) =>
          attached(`a DR restore target of ${c.name}`, names.account, `${c.name}-dr-restore`, [
            [drTemplate, drStack, drStack.restoreTargetPolicy.policies.get(c.name)!],
          ]),
        ),
      clusters,
      sourceBucketArn: sourceTemplate.getAtt(logicalIdOf(sourceStack, pgsnap.repository.bucket), 'Arn'),
      sourceKeyArn: sourceTemplate.getAtt(logicalIdOf(sourceStack, pgsnap.repository.key!), 'Arn'),
      drAccount: names.account,
      drBucketArn: `arn:aws:s3:::${names.bucketName}`,
      drKeyArn: drTemplate.getAtt(logicalIdOf(drStack, drStack.key), 'Arn'),
      volumeKeyArn,
      budgetTableArn: sourceTemplate.getAtt(sourceTemplate.ofType('AWS::DynamoDB::Table')[0]![0], 'Arn'),
      documentArn: `arn:aws:ssm:${source.region}:${source.account}:document/${sourceTemplate.ref(
        logicalIdOf(sourceStack, pgsnap.document.node.findChild('Document')),
      )}`,
      stateMachineArn: `arn:aws:states:${source.region}:${source.account}:stateMachine:pgsnap-prod-backup`,
      restoreStateMachineArn: `arn:aws:states:${source.region}:${source.account}:stateMachine:pgsnap-prod-restore`,
      drRestoreStateMachineArn: `arn:aws:states:${drRegion}:${names.account}:stateMachine:pgsnap-prod-dr-restore`,
    };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

/** Who sends a request: the role under test, or the role that acts in DR on its behalf. */
