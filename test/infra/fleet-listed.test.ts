/**
 * A configuration that lists 500 clusters (not found by tags): 1,000 volumes, an hourly schedule each, drills
 * for some and DR copies for others. Every template that deploys (the source stack, each of its nested
 * shards, the DR stack) stays within CloudFormation's quotas, and every Lambda environment within 4 KB as
 * deployed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, NestedStack, type Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import { afterAll, describe, expect, test } from 'vitest';
import { type EnvironmentInput, environmentSchema } from '../../infra/config/config.ts';
import { DrStack } from '../../infra/dr-stack.ts';
import { deployedLengthOf, maxEnvironmentBytes } from '../../infra/guards/lambda-environment.ts';
import { PgsnapStack } from '../../infra/pgsnap-stack.ts';

/** CloudFormation's quotas per stack (CloudFormation quotas): resources, and a template read from S3. */
const maxResources = 500;
const maxTemplateBytes = 1_000_000;
const count = 500;

const hex = (i: number, width: number) => i.toString(16).padStart(width, '0');
const clusters: NonNullable<EnvironmentInput['clusters']> = Array.from({ length: count }, (_, i) => ({
  name: `orders-db-${String(i).padStart(3, '0')}`,
  instance: { instanceId: `i-0${hex(i, 16)}` },
  volumeIds: [`vol-0${hex(2 * i, 16)}`, `vol-0${hex(2 * i + 1, 16)}`],
  repository: { prefix: 'pgsnap/' },
  schedules: [{ name: 'hourly', expression: 'rate(1 hour)', flexibleWindowMinutes: 15 }],
  copyToDr: i % 3 === 0,
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
clusters[1] = { ...clusters[1]!, schedules: [{ name: 'nightly', expression: 'cron(0 3 * * ? *)' }] };

const outdir = mkdtempSync(join(tmpdir(), 'pgsnap-fleet-'));
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

const started = Date.now();
const app = new App({ context: { 'aws:cdk:bundling-stacks': [] }, outdir });
const environment = environmentSchema.parse({
  name: 'fleet',
  account: '111122223333',
  region: 'eu-west-1',
  clusters,
  dr: { region: 'us-west-2' },
});
const source = new PgsnapStack(app, 'pgsnap-fleet', { environment });
const dr = new DrStack(app, 'pgsnap-fleet-dr', { environment });
// Synthesis runs the stacks' validations (AwsLimits, LambdaEnvironmentSize): it throws on any violation.
const assembly = app.synth();
const synthSeconds = (Date.now() - started) / 1000;

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;
const nested = source.node.findAll().filter((c): c is NestedStack => c instanceof NestedStack);
const templates: Array<[string, Stack]> = [
  ['source', source],
  ['dr', dr],
  ...nested.map((stack) => [stack.node.path, stack] as [string, Stack]),
];
const json = (stack: Stack) => Template.fromStack(stack).toJSON() as { Resources: Resources };

describe(`${count} listed clusters, 2 volumes and an hourly schedule each, some drilled, some copied to DR`, () => {
  test('synthesize in reasonable time', () => {
    expect(assembly.stacks.length).toBe(2);
    expect(synthSeconds).toBeLessThan(120);
  });

  test('every template (source, DR, each nested shard) is within 500 resources and 1 MB', () => {
    expect(nested.length).toBeGreaterThan(1);
    for (const [name, stack] of templates) {
      const template = json(stack);
      expect(Object.keys(template.Resources).length, name).toBeLessThanOrEqual(maxResources);
      expect(Buffer.byteLength(JSON.stringify(template)), name).toBeLessThanOrEqual(maxTemplateBytes);
    }
  });

  test('every Lambda environment is within 4 KB with the deployed names', () => {
    for (const [name, stack] of templates) {
      const resources = json(stack).Resources;
      const typeOf = (id: string) => resources[id]?.Type;
      for (const fn of stack.node.findAll().filter((c): c is CfnFunction => c instanceof CfnFunction)) {
        const variables = (
          stack.resolve(fn.environment) as {
            variables?: Record<string, Parameters<typeof deployedLengthOf>[0]>;
          }
        )?.variables;
        const bytes = Object.entries(variables ?? {}).reduce(
          (sum, [key, value]) => sum + Buffer.byteLength(key) + deployedLengthOf(value, typeOf),
          0,
        );
        expect(bytes, `${name} ${fn.node.path}`).toBeLessThanOrEqual(maxEnvironmentBytes);
      }
    }
  });

  test('the shared hourly cadence is a few schedules naming their clusters; the nightly one keeps its own', () => {
    const schedules = templates.flatMap(([, stack]) =>
      Object.values(json(stack).Resources).filter(
        (r) => r.Type === 'AWS::Scheduler::Schedule' && !String(r.Properties?.Description).includes('drill'),
      ),
    );
    const inputs = schedules.map(
      (s) => JSON.parse((s.Properties!.Target as { Input: string }).Input) as Record<string, unknown>,
    );
    const grouped = inputs.filter((input) => Array.isArray(input.clusters));
    expect(grouped.flatMap((input) => input.clusters as string[]).sort()).toEqual(
      clusters.map((c) => c.name).filter((name) => name !== 'orders-db-001'),
    );
    expect(grouped.length).toBe(5);
    expect(inputs.filter((input) => input.cluster === 'orders-db-001')).toEqual([
      expect.objectContaining({ cluster: 'orders-db-001', label: 'scheduled', trigger: 'schedule' }),
    ]);
  });

  test("each cluster's host and restore target policy is in one place, named after it", () => {
    const policies = templates.flatMap(([, stack]) =>
      Object.values(json(stack).Resources)
        .filter((r) => r.Type === 'AWS::IAM::ManagedPolicy')
        .map((r) => String(r.Properties?.ManagedPolicyName)),
    );
    for (const cluster of ['orders-db-000', 'orders-db-499']) {
      expect(policies.filter((p) => p === `pgsnap-fleet-host-${cluster}`)).toHaveLength(1);
      expect(policies.filter((p) => p === `pgsnap-fleet-restore-${cluster}`)).toHaveLength(1);
    }
  });
});
