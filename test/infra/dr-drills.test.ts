/**
 * DR drills and DR alarms (infra/dr-stack.ts with `dr.drills`): a drill kit
 * per copied cluster holding the DR restore target policy, a schedule per
 * copied cluster that starts the DR restore state machine through start-drill
 * (an execution named after the cluster and the scheduled time), the DR
 * drills' age reporter, and every DR alarm notifying the DR topic.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, test } from 'vitest';
import { type EnvironmentInput, environmentSchema, parseConfig } from '../../infra/config/config.ts';
import { DrStack } from '../../infra/dr-stack.ts';
import { PgsnapStack } from '../../infra/pgsnap-stack.ts';
import { catalogOf } from '../support/backup-stack.ts';

const source = { account: '111122223333', region: 'eu-west-1' };
const drAccount = '444455556666';
const drDrills = {
  schedule: 'cron(0 7 ? * SAT *)',
  launch: { subnetId: 'subnet-0fedcba9876543210' },
  kit: { imageId: 'ami-0fedcba9876543210', vpcId: 'vpc-0fedcba9876543210' },
  rtoMinutes: 90,
};

function environment(dr: Record<string, unknown>): EnvironmentInput {
  return {
    name: 'prod',
    ...source,
    notifications: { emails: ['dba@example.com'] },
    clusters: [
      {
        name: 'orders-db',
        instance: { instanceId: 'i-0123456789abcdef0' },
        repository: { prefix: 'pgsnap/' },
        retention: { keepLast: 7 },
      },
      { name: 'billing-db', instance: { instanceId: 'i-0123456789abcdef2' } },
      { name: 'scratch-db', instance: { instanceId: 'i-0123456789abcdef1' }, copyToDr: false },
    ],
    dr: { account: drAccount, region: 'us-west-2', externalId: 'pgsnap-prod-7f3a9c2e', ...dr },
  } as EnvironmentInput;
}

function synth(input: EnvironmentInput, outdir?: string) {
  const dir = outdir ?? mkdtempSync(join(tmpdir(), 'pgsnap-dr-drills-'));
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] }, outdir: dir });
  if (outdir) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  try {
    const parsed = environmentSchema.parse(input);
    new PgsnapStack(app, 'pgsnap-prod', { environment: parsed });
    const drStack = new DrStack(app, 'pgsnap-prod-dr', { environment: parsed });
    return { app, dr: Template.fromStack(drStack), drStack };
  } finally {
    if (!outdir) rmSync(dir, { recursive: true, force: true });
  }
}

/** A resource as findResources gives it (its properties untyped). */
type Resource = ReturnType<Template['findResources']>[string];
const values = (found: Record<string, Resource>): Resource[] => Object.values(found);

describe('DR drills', () => {
  const { dr, drStack } = synth(environment({ drills: drDrills }));

  test('each copied cluster gets a DR drill kit: a pgsnap- role holding the DR restore target policy and SSM, IMDSv2, no public address', () => {
    const templates = values(dr.findResources('AWS::EC2::LaunchTemplate'));
    expect(templates.map((t) => t.Properties.LaunchTemplateName).sort()).toEqual([
      'pgsnap-prod-dr-drill-billing-db',
      'pgsnap-prod-dr-drill-orders-db',
    ]);
    for (const t of templates) {
      const data = t.Properties.LaunchTemplateData;
      expect(data.ImageId).toBe('ami-0fedcba9876543210');
      expect(data.MetadataOptions.HttpTokens).toBe('required');
      expect(data.NetworkInterfaces).toEqual([
        expect.objectContaining({ DeviceIndex: 0, AssociatePublicIpAddress: false }),
      ]);
    }
    const group = values(dr.findResources('AWS::EC2::SecurityGroup'))[0]!.Properties;
    expect(group.VpcId).toBe('vpc-0fedcba9876543210');
    expect(group.SecurityGroupIngress).toBeUndefined();

    const roles = dr.findResources('AWS::IAM::Role', {
      Properties: { RoleName: 'pgsnap-prod-dr-drill-orders-db' },
    });
    expect(Object.keys(roles)).toHaveLength(1);
    const [roleId, role] = Object.entries(roles)[0]!;
    expect(JSON.stringify(role.Properties.ManagedPolicyArns)).toContain('AmazonSSMManagedInstanceCore');
    // The one definition of what a restore target may do, attached to the kit's role: no policy of its own.
    const policies = values(
      dr.findResources('AWS::IAM::ManagedPolicy', {
        Properties: { ManagedPolicyName: 'pgsnap-prod-dr-restore-orders-db' },
      }),
    );
    expect(policies).toHaveLength(1);
    expect(policies[0]!.Properties.Roles).toEqual([{ Ref: roleId }]);
    expect(values(dr.findResources('AWS::IAM::ManagedPolicy'))).toHaveLength(2);
  });

  test('a schedule per copied cluster invokes start-drill with the scheduled time, within a flexible window, as a role only this account’s schedules assume', () => {
    const schedules = values(
      dr.findResources('AWS::Scheduler::Schedule', {
        Properties: { Description: 'pgsnap restore drill of orders-db' },
      }),
    );
    expect(schedules).toHaveLength(1);
    const schedule = schedules[0]!.Properties;
    expect(schedule.ScheduleExpression).toBe('cron(0 7 ? * SAT *)');
    expect(schedule.FlexibleTimeWindow).toEqual({ Mode: 'FLEXIBLE', MaximumWindowInMinutes: 1440 });
    expect(JSON.stringify(schedule.Target.Arn)).toMatch(/StartDrill/);
    expect(JSON.parse(schedule.Target.Input)).toEqual({
      cluster: 'orders-db',
      backupId: 'latest',
      mode: 'drill',
      instance: {
        launch: { subnetId: 'subnet-0fedcba9876543210', launchTemplate: 'pgsnap-prod-dr-drill-orders-db' },
      },
      checks: { amcheck: 'all' },
      scheduledTime: '<aws.scheduler.scheduled-time>',
    });
    expect(
      values(dr.findResources('AWS::Scheduler::Schedule')).filter((s) =>
        String(s.Properties.Description).startsWith('pgsnap restore drill of'),
      ),
    ).toHaveLength(2);

    const roleId = (schedule.Target.RoleArn as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
    const trust = dr.toJSON().Resources[roleId].Properties.AssumeRolePolicyDocument.Statement;
    expect(trust).toEqual([
      expect.objectContaining({
        Principal: { Service: 'scheduler.amazonaws.com' },
        Condition: { StringEquals: { 'aws:SourceAccount': drAccount } },
      }),
    ]);
  });

  test('start-drill starts the DR restore state machine, and may start nothing else', () => {
    const fns = values(dr.findResources('AWS::Lambda::Function')).filter((f) =>
      JSON.stringify(f.Properties.Description).includes('scheduled drill execution'),
    );
    expect(fns).toHaveLength(1);
    const target = fns[0]!.Properties.Environment.Variables.PGSNAP_RESTORE_STATE_MACHINE_ARN;
    const machine = drStack.getLogicalId(
      drStack.restore.stateMachine.stateMachine.node.defaultChild as never,
    );
    expect(target).toEqual({ Ref: machine });
    const starts = values(dr.findResources('AWS::IAM::Policy'))
      .flatMap((p) => p.Properties.PolicyDocument.Statement as Array<Record<string, unknown>>)
      .filter((s) => JSON.stringify(s.Action).includes('states:StartExecution'));
    expect(starts.map((s) => s.Resource)).toEqual([{ Ref: machine }]);
  });

  test('the DR drills’ age comes from the DR repository’s restore records, in the DR region', () => {
    const reporters = values(dr.findResources('AWS::Lambda::Function')).filter((f) =>
      String(f.Properties.Description).includes('counts the clusters over their objectives'),
    );
    expect(reporters).toHaveLength(1);
    // Its list is in the DR catalog; their shared objective, said once: no successful DR drill in 8 days.
    const freshness = catalogOf(dr).freshness!;
    expect(freshness.defaults).toEqual({ drillDays: 8, watchArchiving: false });
    expect(freshness.clusters).toEqual([
      {
        name: 'orders-db',
        repository: `s3://pgsnap-dr-prod-${drAccount}-us-west-2/pgsnap?region=us-west-2`,
        copiedToDr: false,
        drills: true,
      },
      {
        name: 'billing-db',
        repository: `s3://pgsnap-dr-prod-${drAccount}-us-west-2?region=us-west-2`,
        copiedToDr: false,
        drills: true,
      },
    ]);
  });

  test('every DR alarm notifies the DR topic, which mails the configured addresses', () => {
    const topics = Object.keys(dr.findResources('AWS::SNS::Topic'));
    expect(topics).toHaveLength(1);
    dr.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'dba@example.com' });
    const alarms = Object.entries(dr.findResources('AWS::CloudWatch::Alarm'));
    const names = alarms.map(([id]) => id.replace(/[0-9A-F]{8}$/, '')).sort();
    expect(names).toEqual(
      expect.arrayContaining([
        'AlarmsRestoreExecutionsFailed',
        'RestoreordersdbDrillRtoOverObjective',
        // One for the fleet: report-backup-age counts the clusters without a recent DR drill.
        'DrillAgeClustersWithoutRecentDrill',
        'RetentionFailed',
      ]),
    );
    for (const [id, alarm] of alarms) {
      expect(alarm.Properties.AlarmActions, id).toEqual([{ Ref: topics[0] }]);
    }
  });

  test('the DR stack outputs its bucket, its restore state machine, its restore document and its topic', () => {
    const outputs = Object.keys(dr.toJSON().Outputs).sort();
    expect(outputs).toEqual([
      'DrAlarmTopicArn',
      'DrRepositoryBucket',
      'DrRestoreDocumentName',
      'DrRestoreStateMachineArn',
    ]);
  });
});

describe('without dr.drills', () => {
  test('no kit and no DR drill, and the retention alarm still notifies the DR topic', () => {
    const { dr } = synth(environment({}));
    expect(Object.keys(dr.findResources('AWS::EC2::LaunchTemplate'))).toEqual([]);
    expect(
      values(dr.findResources('AWS::Scheduler::Schedule')).filter((s) =>
        String(s.Properties.Description).includes('drill'),
      ),
    ).toEqual([]);
    const topic = Object.keys(dr.findResources('AWS::SNS::Topic'))[0]!;
    const alarms = values(dr.findResources('AWS::CloudWatch::Alarm'));
    expect(alarms.length).toBeGreaterThanOrEqual(2);
    for (const alarm of alarms) expect(alarm.Properties.AlarmActions).toEqual([{ Ref: topic }]);
  });

  test('DR drills that name neither a launch template nor a kit are refused with what to give', () => {
    const { kit: _, ...noKit } = drDrills;
    expect(() => parseConfig({ environments: [environment({ drills: noKit })] })).toThrow(
      /prod\.dr\.drills: give drills\.launch\.launchTemplate, or drills\.kit to make one/,
    );
  });
});

test('cdk-nag passes on both stacks with DR drills, every finding acknowledged with its reason', () => {
  const outdir = mkdtempSync(join(tmpdir(), 'pgsnap-nag-dr-drills-'));
  try {
    const { app } = synth(environment({ drills: drDrills }), outdir);
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
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
});
