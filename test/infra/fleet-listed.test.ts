/**
 * A configuration that lists many clusters (not found by tags): 2 volumes, an hourly schedule and retention
 * each, drills for some and DR copies for others. Every template that deploys (the source stack, each of its nested
 * shards, the DR stack) stays within CloudFormation's quotas, every Lambda environment within 4 KB as
 * deployed, every role within IAM's 10 managed policies (CDK moves an inline policy past IAM's size
 * into "overflow" managed policies) and its sizes, and every bucket policy within S3's 20 KB.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, NestedStack, type Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import { describe, expect, test } from 'vitest';
import { type EnvironmentInput, environmentSchema } from '../../infra/config/config.ts';
import { DrStack } from '../../infra/dr-stack.ts';
import { customResourceEnvelopeBytes, maxCustomResourceRequestBytes } from '../../infra/guards/aws-limits.ts';
import { clustersPerShard } from '../../infra/guards/cluster-shards.ts';
import { deployedLengthOf, maxEnvironmentBytes } from '../../infra/guards/lambda-environment.ts';
import { PgsnapStack } from '../../infra/pgsnap-stack.ts';
import { catalogOf, synthStack, testEnvironment } from '../support/backup-stack.ts';

/** CloudFormation's quotas per stack (CloudFormation quotas): resources, and a template read from S3. */
const maxResources = 500;
const maxTemplateBytes = 1_000_000;
/** IAM quotas: managed policies attached to a role (the default; at most 20 on request). */
const maxManagedPoliciesPerRole = 10;
/** IAM quotas: the inline policies of a role together, and one managed policy, in characters without whitespace. */
const maxInlinePolicyPerRole = 10_240;
const maxManagedPolicy = 6_144;
/** S3: a bucket policy's size (Amazon S3 user guide, "Bucket policy examples": 20 KB). */
const maxBucketPolicy = 20_480;
/**
 * A policy document's length as the template holds it: a reference (`{"Ref": …}`, `{"Fn::Join": …}`) is
 * counted as written there, longer than most names it stands for, so the measure errs on the safe side.
 */
const policyLength = (document: unknown) => JSON.stringify(document).length;

const hex = (i: number, width: number) => i.toString(16).padStart(width, '0');

function listedClusters(count: number): NonNullable<EnvironmentInput['clusters']> {
  const clusters = Array.from({ length: count }, (_, i) => ({
    name: `orders-db-${String(i).padStart(3, '0')}`,
    instance: { instanceId: `i-0${hex(i, 16)}` },
    volumeIds: [`vol-0${hex(2 * i, 16)}`, `vol-0${hex(2 * i + 1, 16)}`],
    repository: { prefix: 'pgsnap/' },
    schedules: [{ name: 'hourly', expression: 'rate(1 hour)', flexibleWindowMinutes: 15 }],
    copyToDr: i % 3 === 0,
    // Every cluster thins its hourly backups; the copied ones keep their DR copies longer, a few on a
    // cadence of their own.
    retention: {
      thin: { hours: 24, days: 7, weeks: 4 },
      ...(i % 3 === 0 ? { dr: { thin: { days: 14, weeks: 8 } } } : {}),
      ...(i % 7 === 0 ? { schedule: 'cron(0 5 * * ? *)', flexibleWindowMinutes: 30 } : {}),
    },
    ...(i % 10 === 0
      ? {
          drills: {
            schedule: 'cron(0 6 ? * SUN *)',
            launch: { subnetId: 'subnet-0123456789abcdef0' },
            kit: { imageId: 'ami-0123456789abcdef0', vpcId: 'vpc-0123456789abcdef0' },
          },
        }
      : {}),
  }));
  // One with a schedule of its own: it keeps its own schedule, as a small configuration's clusters do.
  clusters[1] = {
    ...clusters[1]!,
    schedules: [{ name: 'nightly', expression: 'cron(0 3 * * ? *)' }] as never,
  };
  return clusters;
}

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;
const json = (stack: Stack) => Template.fromStack(stack).toJSON() as { Resources: Resources };

/** Synthesizes the source and DR stacks of `count` listed clusters; what breaks a quota, in words. */
function quotaViolations(count: number): string[] {
  const outdir = mkdtempSync(join(tmpdir(), 'pgsnap-fleet-'));
  try {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] }, outdir });
    const environment = environmentSchema.parse({
      name: 'fleet',
      account: '111122223333',
      region: 'eu-west-1',
      clusters: listedClusters(count),
      dr: { region: 'us-west-2' },
    });
    const source = new PgsnapStack(app, 'pgsnap-fleet', { environment });
    const dr = new DrStack(app, 'pgsnap-fleet-dr', { environment });
    // Synthesis runs the stacks' validations (AwsLimits, LambdaEnvironmentSize) and CDK's 500-resource check.
    try {
      app.synth();
    } catch (error) {
      return [(error as Error).message];
    }
    const nested = source.node.findAll().filter((c): c is NestedStack => c instanceof NestedStack);
    const stacks: Array<[string, Stack]> = [
      ['source', source],
      ['dr', dr],
      ...nested.map((stack) => [stack.node.path, stack] as [string, Stack]),
    ];
    const violations: string[] = [];
    if (count > clustersPerShard && nested.length < 2)
      violations.push(`${count} clusters in ${nested.length} shards`);
    for (const [name, stack] of stacks) {
      const template = json(stack);
      const resources = Object.keys(template.Resources).length;
      if (resources > maxResources) violations.push(`${name}: ${resources} resources`);
      const bytes = Buffer.byteLength(JSON.stringify(template));
      if (bytes > maxTemplateBytes) violations.push(`${name}: a template of ${bytes} bytes`);
      // CloudFormation invokes a custom resource's Lambda asynchronously, an update with the old properties
      // beside the new: held to 256 KB with the envelope (infra/guards/aws-limits.ts).
      for (const [id, resource] of Object.entries(template.Resources)) {
        if (!resource.Type.startsWith('Custom::')) continue;
        const request = 2 * JSON.stringify(resource.Properties).length + customResourceEnvelopeBytes;
        if (request > maxCustomResourceRequestBytes)
          violations.push(`${name} ${id}: an update request of ${request} bytes`);
      }
      const typeOf = (id: string) => template.Resources[id]?.Type;
      for (const fn of stack.node.findAll().filter((c): c is CfnFunction => c instanceof CfnFunction)) {
        const variables = (
          stack.resolve(fn.environment) as
            | { variables?: Record<string, Parameters<typeof deployedLengthOf>[0]> }
            | undefined
        )?.variables;
        const bytes = Object.entries(variables ?? {}).reduce(
          (sum, [key, value]) => sum + Buffer.byteLength(key) + deployedLengthOf(value, typeOf),
          0,
        );
        if (bytes > maxEnvironmentBytes) violations.push(`${fn.node.path}: an environment of ${bytes} bytes`);
      }
      const attached = new Map<string, number>();
      const inline = new Map<string, number>();
      for (const [id, resource] of Object.entries(template.Resources)) {
        const document = resource.Properties?.PolicyDocument;
        const roles = (resource.Properties?.Roles as Array<{ Ref: string }> | undefined) ?? [];
        if (resource.Type === 'AWS::S3::BucketPolicy' && policyLength(document) > maxBucketPolicy)
          violations.push(`${name} ${id}: a bucket policy of ${policyLength(document)} characters`);
        if (resource.Type === 'AWS::IAM::Policy') {
          for (const role of roles)
            inline.set(role.Ref, (inline.get(role.Ref) ?? 0) + policyLength(document));
        }
        if (resource.Type !== 'AWS::IAM::ManagedPolicy') continue;
        if (policyLength(document) > maxManagedPolicy)
          violations.push(`${name} ${id}: a managed policy of ${policyLength(document)} characters`);
        for (const role of roles) {
          attached.set(role.Ref, (attached.get(role.Ref) ?? 0) + 1);
        }
      }
      for (const [role, characters] of inline) {
        if (characters > maxInlinePolicyPerRole)
          violations.push(`${name} ${role}: inline policies of ${characters} characters`);
      }
      for (const [role, policies] of attached) {
        if (policies > maxManagedPoliciesPerRole)
          violations.push(`${name} ${role}: ${policies} managed policies`);
      }
    }
    return violations;
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

describe('listed clusters, 2 volumes, an hourly schedule and retention each, some drilled, some copied to DR', () => {
  test('40 clusters (two shards) synthesize within every quota', () => {
    expect(quotaViolations(40)).toEqual([]);
  });

  // Past 30 clusters the Lambdas' and state machines' roles grant by repository prefix (infra/guards/fleet-grants.ts).
  test('500 clusters synthesize within every quota', () => {
    expect(quotaViolations(500)).toEqual([]);
  }, 300_000);

  test('the shared hourly cadence is a few schedules naming their clusters; the nightly one keeps its own', () => {
    const clusters = listedClusters(250);
    const { template } = synthStack({ ...testEnvironment, name: 'fleet', clusters }, {});
    const inputs = Object.values(template.findResources('AWS::Scheduler::Schedule'))
      .filter((s) => !String(s.Properties.Description).includes('drill'))
      .map((s) => JSON.parse(s.Properties.Target.Input) as Record<string, unknown>);
    const grouped = inputs.filter((input) => Array.isArray(input.clusters));
    expect(grouped.flatMap((input) => input.clusters as string[]).sort()).toEqual(
      clusters.map((c) => c.name).filter((name) => name !== 'orders-db-001'),
    );
    expect(grouped.map((input) => (input.clusters as string[]).length)).toEqual([100, 100, 49]);
    expect(inputs.filter((input) => input.cluster === 'orders-db-001')).toEqual([
      expect.objectContaining({ cluster: 'orders-db-001', label: 'scheduled', trigger: 'schedule' }),
    ]);
  }, 120_000);

  test('retention of every cluster is one schedule per cadence and side, and each cluster’s policy is in its side’s catalog', () => {
    const count = 250;
    const clusters = listedClusters(count);
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const environment = environmentSchema.parse({
      name: 'fleet',
      account: '111122223333',
      region: 'eu-west-1',
      clusters,
      dr: { region: 'us-west-2' },
    });
    const source = new PgsnapStack(app, 'pgsnap-fleet', { environment });
    const dr = new DrStack(app, 'pgsnap-fleet-dr', { environment });
    const sides = { source: Template.fromStack(source), DR: Template.fromStack(dr) };
    for (const [side, template] of Object.entries(sides)) {
      const cadences = Object.values(template.findResources('AWS::Scheduler::Schedule'))
        .filter((s) => String(s.Properties.Description).startsWith(`pgsnap ${side} retention`))
        .map((s) => (JSON.parse(s.Properties.Target.Input) as { schedule: string }).schedule)
        .sort();
      expect(cadences).toEqual(['cron(0 5 * * ? *)', 'rate(1 day)']);
      // Each retained cluster is in the catalog start-retention reads, with a cadence one of those schedules has.
      const catalog = catalogOf(template);
      const retained = side === 'source' ? clusters : clusters.filter((c) => c.copyToDr);
      expect(catalog.clusters.map((c) => c.name).sort()).toEqual(retained.map((c) => c.name).sort());
      for (const entry of catalog.clusters) {
        const i = Number(String(entry.name).slice(-3));
        expect(entry.retention).toEqual(
          side === 'DR'
            ? { thin: { days: 14, weeks: 8 }, schedule: i % 7 === 0 ? 'cron(0 5 * * ? *)' : 'rate(1 day)' }
            : {
                thin: { hours: 24, days: 7, weeks: 4 },
                schedule: i % 7 === 0 ? 'cron(0 5 * * ? *)' : 'rate(1 day)',
              },
        );
      }
    }
  }, 120_000);
});
