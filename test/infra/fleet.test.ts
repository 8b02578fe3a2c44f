import { Stack, Token } from 'aws-cdk-lib';
import { describe, expect, test } from 'vitest';
import { deployedLengthOf, maxEnvironmentBytes } from '../../infra/guards/lambda-environment.ts';
import { catalogOf, catalogText, synthStack, testEnvironment } from '../support/backup-stack.ts';

/** CloudFormation's quotas per stack (CloudFormation quotas): resources, and a template read from S3. */
const maxResources = 500;
const maxTemplateBytes = 1_000_000;

describe('a fleet of clusters found by tags', () => {
  // Any number of tagged hosts: nothing in the stack grows with them.
  const synthesized = synthStack(
    {
      ...testEnvironment,
      name: 'fleet',
      discover: {
        tag: 'pgsnap:cluster',
        defaults: {
          prefix: 'fleet/',
          schedules: [
            { name: 'hourly', expression: 'rate(1 hour)', flexibleWindowMinutes: 15 },
            { name: 'nightly', expression: 'cron(0 3 * * ? *)', flexibleWindowMinutes: 60 },
          ],
        },
      },
    },
    { nag: true },
  );
  const template = synthesized.template.toJSON() as {
    Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
  };

  test('synthesizes within the quotas, with cdk-nag satisfied', () => {
    expect(Object.keys(template.Resources).length).toBeLessThanOrEqual(maxResources);
    expect(Buffer.byteLength(JSON.stringify(template))).toBeLessThanOrEqual(maxTemplateBytes);
  });

  test('one schedule per fleet cadence invokes start-fleet with the scheduled time', () => {
    const schedules = Object.values(template.Resources).filter(
      (r) =>
        r.Type === 'AWS::Scheduler::Schedule' && String(r.Properties.Description).includes('every tagged'),
    );
    expect(schedules.map((s) => s.Properties.ScheduleExpression)).toEqual([
      'rate(1 hour)',
      'cron(0 3 * * ? *)',
    ]);
    expect(schedules.map((s) => s.Properties.FlexibleTimeWindow)).toEqual([
      { Mode: 'FLEXIBLE', MaximumWindowInMinutes: 15 },
      { Mode: 'FLEXIBLE', MaximumWindowInMinutes: 60 },
    ]);
    const input = JSON.parse((schedules[0]!.Properties.Target as { Input: string }).Input);
    expect(input).toEqual({ label: 'scheduled', scheduledTime: '<aws.scheduler.scheduled-time>' });
  });

  test('the catalog tells the Lambdas how clusters are found and where their repository is', () => {
    const [catalog] = Object.values(template.Resources).filter((r) => r.Type === 'Custom::PgsnapCatalog');
    const body = JSON.stringify(catalogText(catalog!.Properties as Parameters<typeof catalogText>[0]));
    expect(body).toContain('\\"discover\\":{\\"tag\\":\\"pgsnap:cluster\\"');
    expect(body).toContain('/fleet/');
  });

  test('SendCommand reaches a host only when it carries the discovery tag', () => {
    const statements = Object.values(template.Resources)
      .filter((r) => r.Type === 'AWS::IAM::Policy')
      .flatMap(
        (r) => (r.Properties.PolicyDocument as { Statement: Array<Record<string, unknown>> }).Statement,
      );
    const sendCommand = statements.filter((s) => [s.Action].flat().includes('ssm:SendCommand'));
    expect(sendCommand).toContainEqual(
      expect.objectContaining({ Condition: { StringLike: { 'ssm:resourceTag/pgsnap:cluster': '?*' } } }),
    );
  });
});

describe('clusters found by tags are retained with discover.defaults.retention', () => {
  const synthesized = synthStack(
    {
      ...testEnvironment,
      name: 'fleet',
      discover: {
        tag: 'pgsnap:cluster',
        defaults: {
          prefix: 'fleet/',
          schedules: [{ name: 'hourly', expression: 'rate(1 hour)', flexibleWindowMinutes: 15 }],
          retention: { thin: { hours: 24, days: 7 }, schedule: 'rate(1 day)', flexibleWindowMinutes: 90 },
        },
      },
    },
    { nag: true },
  );
  const template = synthesized.template.toJSON() as {
    Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
  };
  const statements = Object.values(template.Resources)
    .filter((r) => r.Type === 'AWS::IAM::Policy')
    .flatMap((r) => (r.Properties.PolicyDocument as { Statement: Array<Record<string, unknown>> }).Statement);

  test('one retention schedule starts retention of every cluster found by tags, with their policy in the catalog', () => {
    const schedules = Object.values(template.Resources).filter(
      (r) =>
        r.Type === 'AWS::Scheduler::Schedule' &&
        String(r.Properties.Description).startsWith('pgsnap source retention'),
    );
    expect(schedules.map((s) => s.Properties.Description)).toEqual([
      'pgsnap source retention of every cluster found by tags',
    ]);
    expect(schedules[0]!.Properties.FlexibleTimeWindow).toEqual({
      Mode: 'FLEXIBLE',
      MaximumWindowInMinutes: 90,
    });
    const target = schedules[0]!.Properties.Target as { Arn: { 'Fn::GetAtt': string[] }; Input: string };
    expect(target.Arn['Fn::GetAtt'][0]).toMatch(/StartRetention/);
    expect(JSON.parse(target.Input)).toEqual({ schedule: 'rate(1 day)' });
    const { discover } = catalogOf(synthesized.template) as {
      discover?: { defaults: Record<string, unknown> };
    };
    expect(discover?.defaults.retention).toEqual({ thin: { hours: 24, days: 7 }, schedule: 'rate(1 day)' });
  });

  test('the backup workflow applies retention at its end too', () => {
    expect(JSON.stringify(template)).toContain('Apply retention');
  });

  test('start-retention lists the discovered prefix only; apply-retention deletes under it and snapshots of any cluster', () => {
    expect(statements).toContainEqual(
      expect.objectContaining({
        Action: 's3:ListBucket',
        Condition: { StringLike: { 's3:prefix': 'fleet/' } },
      }),
    );
    const deletes = statements.filter((s) => [s.Action].flat().includes('s3:DeleteObject'));
    expect(deletes.map((s) => JSON.stringify(s.Resource))).toContainEqual(
      expect.stringContaining('/fleet/*/*'),
    );
    expect(statements).toContainEqual(
      expect.objectContaining({
        Action: 'ec2:DeleteSnapshot',
        Condition: { StringLike: { 'aws:ResourceTag/pgsnap:cluster': '?*' } },
      }),
    );
  });
});

describe('the environment check measures what deploys', () => {
  const stack = new Stack();
  const typeOf = (id: string) =>
    id === 'RepositoryBucket' ? 'AWS::S3::Bucket' : 'AWS::StepFunctions::StateMachine';

  test('a bucket reference counts as a 63-character name, not as its token', () => {
    const token = stack.resolve({ Ref: 'RepositoryBucket' });
    expect(deployedLengthOf(token, typeOf)).toBe(63);
    expect(
      deployedLengthOf({ 'Fn::Join': ['', ['s3://', { Ref: 'RepositoryBucket' }, '/pgsnap/']] }, typeOf),
    ).toBe(5 + 63 + 8);
  });

  test('the old cluster list of 20 clusters, which passed as tokens, is over the 4 KB as deployed', () => {
    // The bucket name as a construct sees it before deploy: a token of about 20 characters.
    const bucketToken = Token.asString({ Ref: 'RepositoryBucket' });
    const clusters = Array.from({ length: 20 }, (_, i) => ({
      name: `orders-db-${String(i).padStart(2, '0')}`,
      instanceId: 'i-0123456789abcdef0',
      volumeIds: ['vol-0123456789abcdef0'],
      fastCheckpoint: false,
      maxBackupMinutes: 60,
      repository: `s3://${bucketToken}/`,
    }));
    const asTokens = JSON.stringify(clusters);
    const parts = asTokens.split(bucketToken);
    const asDeployed = deployedLengthOf(
      { 'Fn::Join': ['', parts.flatMap((p, i) => (i === 0 ? [p] : [{ Ref: 'RepositoryBucket' }, p]))] },
      typeOf,
    );
    expect(asTokens.length).toBeLessThan(maxEnvironmentBytes);
    expect(asDeployed).toBeGreaterThan(maxEnvironmentBytes);
  });
});
