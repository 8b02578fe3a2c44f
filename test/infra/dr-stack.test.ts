/**
 * The DR stack (destination account) and the source stack's WAL replication
 * into it: CDK assertions on what each account allows the other, and cdk-nag
 * with no unacknowledged finding on either stack.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import validateAsl from 'asl-validator';
import { App, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, test } from 'vitest';
import { grantOperations } from '#domain/ebs/dr-sharing';
import { type EnvironmentInput, environmentSchema } from '../../infra/config/config.ts';
import { DrStack } from '../../infra/dr-stack.ts';
import { PgsnapStack } from '../../infra/pgsnap-stack.ts';
import { catalogOf, catalogText, stateMachineDefinition } from '../support/backup-stack.ts';

const source = { account: '111122223333', region: 'eu-west-1' };
const drAccount = '444455556666';

function environment(dr: Record<string, unknown>): EnvironmentInput {
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
      },
      { name: 'scratch-db', instance: { instanceId: 'i-0123456789abcdef1' }, copyToDr: false },
    ],
    dr: dr as EnvironmentInput['dr'],
  };
}

const crossAccount = environment({
  account: drAccount,
  region: 'us-west-2',
  externalId: 'pgsnap-prod-7f3a9c2e',
  objectLock: { mode: 'COMPLIANCE', days: 30 },
});
const sameAccount = environment({ region: 'us-west-2' });

function synth(input: EnvironmentInput, options: { nag?: boolean; outdir?: string } = {}) {
  // Synthesized into a directory of its own, removed here unless the caller chose it.
  const outdir = options.outdir ?? mkdtempSync(join(tmpdir(), 'pgsnap-cdk-'));
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] }, outdir });
  if (options.nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  try {
    const parsed = environmentSchema.parse(input);
    const sourceStack = new PgsnapStack(app, 'pgsnap-prod', { environment: parsed });
    const drStack = new DrStack(app, 'pgsnap-prod-dr', { environment: parsed });
    return { app, source: Template.fromStack(sourceStack), dr: Template.fromStack(drStack), drStack };
  } finally {
    if (!options.outdir) rmSync(outdir, { recursive: true, force: true });
  }
}

describe('cdk-nag', () => {
  for (const [name, input] of [
    ['cross-account', crossAccount],
    ['same-account', sameAccount],
  ] as const) {
    test(`${name}: no finding on the source or the DR stack that is not acknowledged with its reason`, () => {
      const outdir = mkdtempSync(join(tmpdir(), 'pgsnap-dr-nag-'));
      try {
        const { app } = synth(input, { nag: true, outdir });
        let failure: unknown;
        try {
          app.synth();
        } catch (error) {
          failure = error;
        }
        const report = JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as {
          pluginReports: Array<{ violations: Array<{ ruleName: string; violatingResources: unknown[] }> }>;
        };
        expect(report.pluginReports.flatMap((r) => r.violations)).toEqual([]);
        expect(failure).toBeUndefined();
        const acknowledged = app.node
          .findAll()
          .flatMap((c) => c.node.metadata.filter((m) => m.type === 'aws:cdk:acknowledged-rules'))
          .flatMap((m) => Object.entries(m.data as Record<string, string>));
        for (const [id, reason] of acknowledged) expect(reason.length, id).toBeGreaterThan(30);
      } finally {
        rmSync(outdir, { recursive: true, force: true });
      }
    });
  }
});

describe('the DR stack', () => {
  test('is deployed in the DR account and region', () => {
    const { drStack } = synth(crossAccount);
    expect([drStack.account, drStack.region]).toEqual([drAccount, 'us-west-2']);
  });

  test('the DR bucket has a fixed name, its own key, versions, Object Lock when asked, and no public access', () => {
    const { dr } = synth(crossAccount);
    dr.hasResourceProperties('AWS::S3::Bucket', {
      BucketName: `pgsnap-dr-prod-${drAccount}-us-west-2`,
      VersioningConfiguration: { Status: 'Enabled' },
      ObjectLockEnabled: true,
      ObjectLockConfiguration: {
        ObjectLockEnabled: 'Enabled',
        Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 30 } },
      },
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      PublicAccessBlockConfiguration: Match.objectLike({
        BlockPublicAcls: true,
        RestrictPublicBuckets: true,
      }),
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          Match.objectLike({ ServerSideEncryptionByDefault: Match.objectLike({ SSEAlgorithm: 'aws:kms' }) }),
        ],
      },
    });
    dr.hasResourceProperties('AWS::KMS::Alias', { AliasName: 'alias/pgsnap-prod-dr' });
    dr.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
  });

  test('without objectLock the bucket has none', () => {
    const { dr } = synth(sameAccount);
    dr.resourcePropertiesCountIs('AWS::S3::Bucket', { ObjectLockEnabled: true }, 0);
  });

  test('the copy role trusts only the source copier role, and only with the external id', () => {
    const { dr } = synth(crossAccount);
    dr.hasResourceProperties('AWS::IAM::Role', {
      RoleName: 'pgsnap-prod-dr-copy',
      AssumeRolePolicyDocument: {
        Statement: [
          {
            Action: 'sts:AssumeRole',
            Effect: 'Allow',
            Principal: { AWS: Match.anyValue() },
            Condition: {
              StringEquals: { 'sts:ExternalId': 'pgsnap-prod-7f3a9c2e' },
              ArnEquals: {
                'aws:PrincipalArn': {
                  'Fn::Join': [
                    '',
                    ['arn:', { Ref: 'AWS::Partition' }, ':iam::111122223333:role/pgsnap-prod-dr-copier'],
                  ],
                },
              },
            },
          },
        ],
      },
    });
    const trust = JSON.stringify(dr.findResources('AWS::IAM::Role'));
    expect(trust).toContain(':iam::111122223333:root');
  });

  test('the copy role creates copies only with a configured cluster tag and uses source keys only through EC2', () => {
    const { dr } = synth(crossAccount);
    const role = Object.values(
      dr.findResources('AWS::IAM::Role', { Properties: { RoleName: 'pgsnap-prod-dr-copy' } }),
    )[0]!;
    const statements = role.Properties.Policies[0].PolicyDocument.Statement as Array<Record<string, unknown>>;
    const bySid = Object.fromEntries(statements.map((s) => [s.Sid, s]));
    expect(bySid.CreateTaggedCopies).toMatchObject({
      Action: 'ec2:CopySnapshot',
      Condition: { StringEquals: { 'aws:RequestTag/pgsnap:cluster': ['orders-db'] } },
    });
    // It deletes nothing: what DR no longer keeps is DR retention's, a role of the DR account's own.
    expect(JSON.stringify(statements)).not.toMatch(/Delete/);
    expect(bySid.UseSourceKeysThroughEbs).toMatchObject({
      Action: [
        'kms:Decrypt',
        'kms:DescribeKey',
        'kms:CreateGrant',
        'kms:ReEncryptFrom',
        'kms:GenerateDataKeyWithoutPlaintext',
      ],
      Condition: { StringLike: { 'kms:ViaService': 'ec2.*.amazonaws.com' } },
    });
    expect(JSON.stringify(bySid.UseSourceKeysThroughEbs!.Resource)).toContain(
      ':kms:eu-west-1:111122223333:key/*',
    );
    // scratch-db is not copied: nothing names it.
    expect(JSON.stringify(dr.toJSON())).not.toContain('scratch-db');
  });

  test('DR retention runs in the DR account on the cluster’s schedule, with its DR policy, over the DR repository', () => {
    for (const input of [crossAccount, sameAccount]) {
      const { dr } = synth(input);
      // One schedule for the cadence, naming whom it retains; it invokes start-retention with the cadence.
      const schedules = Object.values(
        dr.findResources('AWS::Scheduler::Schedule', {
          Properties: { Description: 'pgsnap DR retention of orders-db' },
        }),
      );
      expect(schedules).toHaveLength(1);
      expect(schedules[0]!.Properties.ScheduleExpression).toBe('rate(1 day)');
      expect(schedules[0]!.Properties.Target.Arn['Fn::GetAtt'][0]).toMatch(/StartRetention/);
      expect(JSON.parse(schedules[0]!.Properties.Target.Input)).toEqual({ schedule: 'rate(1 day)' });
      // start-retention retains, on that cadence, each cluster of the DR catalog with a policy there:
      // orders-db, with the DR policy (not the source's keepLast 7), over the DR repository.
      const catalog = catalogOf(dr);
      expect(catalog.clusters).toEqual([
        expect.objectContaining({
          name: 'orders-db',
          repository: expect.stringMatching(/^s3:\/\/<\w+>\/pgsnap\/$/),
          retention: { keepDays: 35, schedule: 'rate(1 day)' },
        }),
      ]);
      const functions = (description: string) =>
        Object.values(
          dr.findResources('AWS::Lambda::Function', { Properties: { Description: description } }),
        );
      const [start] = functions("pgsnap: starts DR retention of every cluster on the schedule's cadence");
      const [apply] = functions("pgsnap: deletes DR backups and WAL past the cluster's retention");
      expect(start!.Properties.Environment.Variables.PGSNAP_APPLY_RETENTION_FUNCTION.Ref).toMatch(
        /ApplyRetention/,
      );
      // Both read the DR catalog, and nothing carries the policies in an environment.
      for (const fn of [start!, apply!]) {
        expect(Object.keys(fn.Properties.Environment.Variables).sort()).toEqual(
          expect.arrayContaining(['PGSNAP_CATALOG']),
        );
        expect(fn.Properties.Environment.Variables.PGSNAP_RETENTION).toBeUndefined();
      }
      // A failed run, or a scheduled start that could not invoke it, is an alarm in the DR account where it runs.
      const failed = Object.values(
        dr.findResources('AWS::CloudWatch::Alarm', {
          Properties: { AlarmDescription: Match.stringLikeRegexp('DR retention failed') },
        }),
      );
      expect(failed).toHaveLength(1);
      const metrics = (
        failed[0]!.Properties.Metrics as Array<{
          Id: string;
          Expression?: string;
          MetricStat?: { Metric: { MetricName: string; Namespace: string; Dimensions: unknown } };
        }>
      ).filter((m) => m.MetricStat);
      expect(metrics.map((m) => [m.MetricStat!.Metric.Namespace, m.MetricStat!.Metric.MetricName])).toEqual([
        ['AWS/Lambda', 'Errors'],
        ['AWS/Lambda', 'Errors'],
      ]);
      const dimensions = JSON.stringify(metrics.map((m) => m.MetricStat!.Metric.Dimensions));
      expect(dimensions).toMatch(/ApplyRetention/);
      expect(dimensions).toMatch(/StartRetention/);
    }
  });

  test('the grant the copier asks KMS for is the one its policy allows and the one the DR role may use', () => {
    const { source, dr } = synth(crossAccount);
    const sourceStatements = Object.values(source.findResources('AWS::IAM::Policy')).flatMap(
      (p) => p.Properties.PolicyDocument.Statement as Array<Record<string, unknown>>,
    );
    // The restore's grants, which EC2 makes for a volume it attaches or launches, are for AWS resources only.
    const forAwsResource = (s: Record<string, unknown>) =>
      (s.Condition as { Bool?: Record<string, string> } | undefined)?.Bool?.['kms:GrantIsForAWSResource'] ===
      'true';
    const grantConditions = sourceStatements
      .filter((s) => s.Action === 'kms:CreateGrant' && !forAwsResource(s))
      .map((s) => (s.Condition as Record<string, Record<string, unknown>>)['ForAllValues:StringEquals']);
    // dr-copies sends CreateGrant with exactly grantOperations: a policy allowing fewer is AccessDenied.
    expect(grantConditions).toEqual([{ 'kms:GrantOperations': grantOperations }]);
    const role = Object.values(
      dr.findResources('AWS::IAM::Role', { Properties: { RoleName: 'pgsnap-prod-dr-copy' } }),
    )[0]!;
    const drStatements = role.Properties.Policies[0].PolicyDocument.Statement as Array<
      Record<string, unknown>
    >;
    expect(drStatements.find((s) => s.Sid === 'UseSourceKeysThroughEbs')?.Action).toEqual(
      grantOperations.map((operation) => `kms:${operation}`),
    );
  });

  test('the key lets the source replication role encrypt through S3, and nothing else', () => {
    const { dr } = synth(crossAccount);
    const key = Object.values(dr.findResources('AWS::KMS::Key'))[0]!;
    const statements = key.Properties.KeyPolicy.Statement as Array<Record<string, unknown>>;
    const forSource = statements.filter((s) => JSON.stringify(s.Principal).includes('111122223333'));
    expect(forSource).toEqual([
      expect.objectContaining({
        Sid: 'SourceWalReplicationEncrypts',
        Action: ['kms:Encrypt', 'kms:GenerateDataKey'],
        Condition: {
          ArnEquals: { 'aws:PrincipalArn': expect.anything() },
          StringEquals: { 'kms:ViaService': 's3.us-west-2.amazonaws.com' },
        },
      }),
    ]);
  });

  test('the bucket lets the source replication role replicate into the WAL prefix of copied clusters only', () => {
    const { dr } = synth(crossAccount);
    const policy = Object.values(dr.findResources('AWS::S3::BucketPolicy')).find((p) =>
      JSON.stringify(p).includes('SourceWalReplication'),
    )!;
    const statement = (policy.Properties.PolicyDocument.Statement as Array<Record<string, unknown>>).find(
      (s) => s.Sid === 'SourceWalReplication',
    )!;
    expect(statement.Action).toEqual([
      's3:ReplicateObject',
      's3:ReplicateDelete',
      's3:ReplicateTags',
      's3:ObjectOwnerOverrideToBucketOwner',
    ]);
    expect(JSON.stringify(statement.Resource)).toContain('/pgsnap/orders-db/wal/*');
    expect(JSON.stringify(statement.Principal)).toContain(
      ':iam::111122223333:role/pgsnap-prod-wal-replication',
    );
  });

  test('in the same account there is no role to assume; the key lets the source copier use it through EC2 and S3', () => {
    const { dr } = synth(sameAccount);
    // The DR region's own restore has its roles (its Lambdas, its state machine); none is for another principal.
    const trusted = Object.values(dr.findResources('AWS::IAM::Role')).flatMap((role) =>
      (
        role.Properties.AssumeRolePolicyDocument.Statement as Array<{ Principal: Record<string, unknown> }>
      ).map((statement) => statement.Principal),
    );
    expect(trusted.length).toBeGreaterThan(0);
    for (const principal of trusted) expect(Object.keys(principal)).toEqual(['Service']);
    dr.resourcePropertiesCountIs('AWS::IAM::Role', { RoleName: 'pgsnap-prod-dr-copy' }, 0);
    const key = Object.values(dr.findResources('AWS::KMS::Key'))[0]!;
    const copier = (key.Properties.KeyPolicy.Statement as Array<Record<string, unknown>>).find(
      (s) => s.Sid === 'SourceCopierUsesTheKeyThroughEbsAndS3',
    );
    expect(copier).toMatchObject({
      Condition: {
        StringEquals: { 'kms:ViaService': ['ec2.us-west-2.amazonaws.com', 's3.us-west-2.amazonaws.com'] },
      },
    });
  });
});

describe('the source stack', () => {
  test("replicates each copied cluster's WAL, and only its WAL, into the DR bucket, owned by the DR account", () => {
    const { source } = synth(crossAccount);
    source.hasResourceProperties('AWS::S3::Bucket', {
      ReplicationConfiguration: {
        Role: Match.anyValue(),
        Rules: [
          {
            Id: 'wal-0',
            Status: 'Enabled',
            Priority: 0,
            Filter: { Prefix: 'pgsnap/orders-db/wal/' },
            DeleteMarkerReplication: { Status: 'Disabled' },
            SourceSelectionCriteria: { SseKmsEncryptedObjects: { Status: 'Enabled' } },
            Destination: {
              Account: drAccount,
              AccessControlTranslation: { Owner: 'Destination' },
              Bucket: {
                'Fn::Join': [
                  '',
                  ['arn:', { Ref: 'AWS::Partition' }, `:s3:::pgsnap-dr-prod-${drAccount}-us-west-2`],
                ],
              },
              EncryptionConfiguration: {
                ReplicaKmsKeyID: {
                  'Fn::Join': [
                    '',
                    ['arn:', { Ref: 'AWS::Partition' }, `:kms:us-west-2:${drAccount}:alias/pgsnap-prod-dr`],
                  ],
                },
              },
            },
          },
        ],
      },
    });
    source.hasResourceProperties('AWS::IAM::Role', { RoleName: 'pgsnap-prod-wal-replication' });
  });

  test('the state machine copies to DR after the announcement and applies retention last; its ASL is valid', () => {
    const { source } = synth(crossAccount);
    const definition = stateMachineDefinition(source);
    const result = validateAsl(definition);
    expect(result.errorsText()).toBe('');
    const states = definition.States;
    // The copy waits in the DR copy budget's queue, and returns its share before it is recorded.
    expect(states['Announce the completed backup']!.Next).toBe('Take a share of the DR copy budget');
    expect(states['Take a share of the DR copy budget']!.Next).toBe('Copy the backup to DR');
    expect(states['Return the share of the DR copy budget']!.Next).toBe('Record the completed DR copies');
    expect(states['Note the failed DR copy']!.Next).toBe(
      "Return the failed copy's share of the DR copy budget",
    );
    expect(states['Record the completed DR copies']!.Next).toBe('Apply retention');
    expect(states['Announce the failed DR copy']!.Next).toBe('Apply retention');
    expect(states['Apply retention']!.Next).toBe('The backup is completed');
    // The copy path never reaches the backup's own failure path.
    const copyCatches = [
      'Take a share of the DR copy budget',
      'Copy the backup to DR',
      'Check whether the DR copies are completed',
      'Record the completed DR copies',
    ].flatMap((name) => (states[name]!.Catch as Array<{ Next: string }>).map((c) => c.Next));
    expect(new Set(copyCatches)).toEqual(new Set(['Note the failed DR copy']));
  });

  test('retention runs on its own schedule too: start-retention, with the cadence, retains the cluster of the catalog', () => {
    const { source } = synth(crossAccount);
    const schedules = Object.values(
      source.findResources('AWS::Scheduler::Schedule', {
        Properties: { Description: 'pgsnap source retention of orders-db' },
      }),
    );
    expect(schedules).toHaveLength(1);
    const target = schedules[0]!.Properties.Target;
    expect(schedules[0]!.Properties.ScheduleExpression).toBe('rate(1 day)');
    expect(target.Arn['Fn::GetAtt'][0]).toMatch(/StartRetention/);
    expect(JSON.parse(target.Input)).toEqual({ schedule: 'rate(1 day)' });
    // The source policy, on that cadence, in the source catalog.
    expect(catalogOf(source).clusters.find((c) => c.name === 'orders-db')).toMatchObject({
      retention: { keepLast: 7, schedule: 'rate(1 day)' },
    });
  });

  test('the DR recorder is also run every six hours to sweep, for a copy event EventBridge lost', () => {
    const { dr } = synth(crossAccount);
    const sweeps = Object.values(
      dr.findResources('AWS::Events::Rule', { Properties: { ScheduleExpression: 'rate(6 hours)' } }),
    );
    expect(sweeps).toHaveLength(1);
    const target = (sweeps[0]!.Properties.Targets as Array<{ Arn: unknown; Input: string }>)[0]!;
    expect(JSON.stringify(target.Arn)).toMatch(/RecordDrBackup/);
    expect(JSON.parse(target.Input)).toEqual({ sweep: true });
  });

  test('a failed DR copy notifies the topic with its event, naming the cluster and the backup', () => {
    const { source } = synth(crossAccount);
    // One rule for the fleet, not an alarm per cluster over its CopyFailed metric.
    expect(
      Object.keys(
        source.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: 'CopyFailed' } }),
      ),
    ).toEqual([]);
    const rules = Object.values(
      source.findResources('AWS::Events::Rule', {
        Properties: { EventPattern: { source: ['pgsnap'], 'detail-type': ['pgsnap copy failed'] } },
      }),
    );
    expect(rules).toHaveLength(1);
    const target = (
      rules[0]!.Properties.Targets as Array<{ InputTransformer: { InputTemplate: string } }>
    )[0]!;
    expect(target.InputTransformer.InputTemplate).toMatch(
      /cluster <detail-cluster>, backup <detail-backupId>/,
    );
  });

  test('copy lag is one alarm for the whole environment, on a metric without a cluster dimension', () => {
    const { source } = synth(crossAccount);
    const lag = source.findResources('AWS::CloudWatch::Alarm', {
      Properties: { MetricName: 'ClustersBehindDrRpo' },
    });
    expect(Object.values(lag)).toHaveLength(1);
    expect(Object.values(lag)[0]!.Properties).toMatchObject({
      Namespace: 'pgsnap',
      Statistic: 'Maximum',
      Threshold: 1,
      TreatMissingData: 'breaching',
    });
    expect(Object.values(lag)[0]!.Properties.Dimensions).toBeUndefined();
    // The report knows each copied cluster's DR RPO (rpoHours + copyHours by default); not the uncopied one.
    // Its list is in the catalog (a fleet's passes Lambda's 4 KB); the body holds the bucket's name as a token.
    const [catalog] = Object.values(source.findResources('Custom::PgsnapCatalog'));
    const body = JSON.stringify(catalogText(catalog!.Properties));
    const clusters = body.slice(body.indexOf('freshness'));
    expect(clusters.match(/drRpoSeconds/g)).toHaveLength(1);
    const at = clusters.search(/drRpoSeconds\\":180000/);
    expect(at).toBeGreaterThan(clusters.indexOf('orders-db'));
    expect(at).toBeLessThan(clusters.indexOf('scratch-db'));
  });

  test('the DR copy budget: its item is the destination Region, its size budgets.copies, and a DR RPO makes copies time-based', () => {
    const { source } = synth({
      ...crossAccount,
      budgets: { copies: 12 },
      dr: { ...crossAccount.dr!, rpoMinutes: 120 },
    });
    const acquire = Object.values(
      source.findResources('AWS::Lambda::Function', {
        Properties: { Description: Match.stringLikeRegexp('share of the DR copy budget') },
      }),
    )[0]!;
    const variables = acquire.Properties.Environment.Variables;
    expect(variables.PGSNAP_COPIES_KEY).toBe('copies#444455556666#us-west-2');
    expect(variables.PGSNAP_COPIES_BUDGET).toBe('12');
    expect(JSON.stringify(variables.PGSNAP_DR)).toContain('rpoMinutes');
  });

  test('a copied cluster with more volumes than the copy budget is refused at synth', () => {
    const tooBig = environment({ region: 'us-west-2' });
    tooBig.budgets = { copies: 2 };
    tooBig.clusters[0]!.volumeIds = [
      'vol-0a1b2c3d4e5f60001',
      'vol-0a1b2c3d4e5f60002',
      'vol-0a1b2c3d4e5f60003',
    ];
    expect(() => synth(tooBig)).toThrow(/orders-db \(3 volumes, budgets.copies 2\).*raise budgets.copies/);
  });

  test('the copier role has its fixed name, may assume only the DR role, and grants only to it', () => {
    const { source } = synth(crossAccount);
    source.hasResourceProperties('AWS::IAM::Role', { RoleName: 'pgsnap-prod-dr-copier' });
    const policies = JSON.stringify(source.findResources('AWS::IAM::Policy'));
    expect(policies).toContain(':iam::444455556666:role/pgsnap-prod-dr-copy');
    expect(policies).toContain('"kms:GranteePrincipal"');
  });

  test('an environment without dr replicates nothing', () => {
    const { dr: _, ...input } = crossAccount;
    const outdir = mkdtempSync(join(tmpdir(), 'pgsnap-cdk-'));
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] }, outdir });
    const template = Template.fromStack(
      new PgsnapStack(app, 'plain', { environment: environmentSchema.parse(input) }),
    );
    rmSync(outdir, { recursive: true, force: true });
    template.resourcePropertiesCountIs('AWS::S3::Bucket', { ReplicationConfiguration: Match.anyValue() }, 0);
  });

  test('a DR account without an external id is refused, naming it', () => {
    expect(() => synth(environment({ account: drAccount, region: 'us-west-2' }))).toThrow(/dr\.externalId/);
  });
});
