import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import validateAsl from 'asl-validator';
import { Match } from 'aws-cdk-lib/assertions';
import type { CfnStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { beforeAll, describe, expect, test } from 'vitest';
import { agentDocumentParameters } from '../../infra/backup/agent-document.ts';
import { restoreDocumentParameters } from '../../infra/restore/restore-document.ts';
import {
  catalogOf,
  catalogText,
  type SynthesizedStack,
  stateMachineDefinition,
  synthStack,
  testEnvironment,
} from '../support/backup-stack.ts';

let synthesized: SynthesizedStack;
beforeAll(() => {
  synthesized = synthStack();
});

describe('cdk-nag', () => {
  test('AwsSolutions reports no finding that is not acknowledged, and every acknowledgement gives its reason', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'pgsnap-nag-'));
    try {
      const { app } = synthStack(undefined, { nag: true, outdir });
      let failure: unknown;
      try {
        app.synth();
      } catch (error) {
        failure = error;
      }
      const report = JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as {
        pluginReports: Array<{ violations: Array<{ ruleName: string; violatingResources: unknown[] }> }>;
      };
      const violations = report.pluginReports.flatMap((r) => r.violations);
      expect(violations).toEqual([]);
      expect(failure).toBeUndefined();

      const acknowledgements = app.node
        .findAll()
        .flatMap((c) => c.node.metadata.filter((m) => m.type === 'aws:cdk:acknowledged-rules'))
        .flatMap((m) => Object.entries(m.data as Record<string, string>));
      expect(acknowledgements.length).toBeGreaterThan(0);
      for (const [id, reason] of acknowledgements) {
        // Besides ours, CDK itself acknowledges CloudFormation-Validate rules it knows not to apply.
        if (id.startsWith('AwsSolutions')) expect(id).toMatch(/^AwsSolutions-(IAM4|IAM5)\[.+\]$/);
        expect(reason.length, id).toBeGreaterThan(30);
      }
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});

describe('the repository bucket', () => {
  test('blocks public access, encrypts with its own KMS key, keeps versions and expires noncurrent ones', () => {
    const { template } = synthesized;
    template.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          Match.objectLike({ ServerSideEncryptionByDefault: Match.objectLike({ SSEAlgorithm: 'aws:kms' }) }),
        ],
      },
      VersioningConfiguration: { Status: 'Enabled' },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ NoncurrentVersionExpiration: { NoncurrentDays: 30 }, Status: 'Enabled' }),
        ]),
      },
      LoggingConfiguration: Match.objectLike({ LogFilePrefix: 'repository/' }),
    });
    template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Retain' });
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
  });

  test('refuses requests without TLS', () => {
    synthesized.template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  test('an existing bucket is imported, not created', () => {
    const { template } = synthStack({
      name: 'imported',
      clusters: [
        {
          name: 'orders-db',
          instance: { instanceId: 'i-0123456789abcdef0' },
          repository: { bucketName: 'existing-backups', prefix: 'pg/' },
        },
      ],
    });
    const policies = JSON.stringify(template.findResources('AWS::IAM::ManagedPolicy'));
    expect(policies).toContain('arn:');
    expect(policies).toContain(':s3:::existing-backups/pg/orders-db/*');
  });
});

describe('the state machine', () => {
  test('is a Standard state machine with X-Ray tracing, and logs every state without its data (task tokens)', () => {
    synthesized.template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineType: 'STANDARD',
      StateMachineName: 'pgsnap-test-backup',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: Match.objectLike({ Level: 'ALL', IncludeExecutionData: false }),
    });
  });

  test('its synthesized ASL is valid', () => {
    const result = validateAsl(stateMachineDefinition(synthesized.template));
    expect(result.errorsText()).toBe('');
    expect(result.isValid).toBe(true);
  });

  test("only the first step reads the execution's name and start time; every later one reads the backupId it made of them", () => {
    const asl = stateMachineDefinition(synthesized.template);
    expect(asl.States['Check the request and find the cluster']!.Parameters).toMatchObject({
      'executionName.$': '$$.Execution.Name',
      'executionStartTime.$': '$$.Execution.StartTime',
    });
    const readingTheExecution = Object.entries(asl.States)
      .filter(([, state]) => JSON.stringify(state).includes('$$.Execution.'))
      .map(([name]) => name);
    expect(readingTheExecution).toEqual(['Check the request and find the cluster']);
    expect(asl.States['Begin the backup on the host']).toMatchObject({
      Parameters: { Parameters: { 'backupId.$': 'States.Array($.backupId)' } },
    });
  });

  test('every step after begin catches every error into the one cleanup path, which ends failed', () => {
    const asl = stateMachineDefinition(synthesized.template);
    const catchTarget = (name: string) =>
      (asl.States[name]!.Catch as Array<{ ErrorEquals: string[]; Next: string }> | undefined)?.find((c) =>
        c.ErrorEquals.includes('States.ALL'),
      )?.Next;
    const successPath = [
      'Begin the backup on the host',
      "Snapshot the cluster's volumes",
      'Record the snapshots in the manifest',
      'End the backup on the host',
      'Check whether the snapshots are completed',
      'Mark the backup completed in the manifest',
    ];
    for (const step of successPath)
      expect(catchTarget(step), step).toBe('Can the host still be in backup mode?');
    // Once the manifest says completed the backup is good: a failed count or announcement must not delete it.
    const afterCompleted = ['Count the completed backup', 'Announce the completed backup'];
    expect(afterCompleted.map(catchTarget)).toEqual([
      'Announce the completed backup',
      'The backup is completed',
    ]);
    // The budget share is taken before begin (a refusal has nothing to clean up) and returned once the
    // snapshots are completed: failing to return it (it lapses) must not fail a good backup.
    expect(catchTarget('Take a share of the pending-snapshot budget')).toBe('The backup request is refused');
    expect(asl.States['Take a share of the pending-snapshot budget']!.Next).toBe(
      'Begin the backup on the host',
    );
    expect(catchTarget('Return the share of the pending-snapshot budget')).toBe(
      'Mark the backup completed in the manifest',
    );
    const budget = [
      'Take a share of the pending-snapshot budget',
      'Return the share of the pending-snapshot budget',
    ];
    const tasks = Object.entries(asl.States).filter(([, s]) => s.Type === 'Task');
    const cleanup = [
      'Abort the backup on the host',
      "Delete the backup's snapshots",
      "Return the failed backup's share of the pending-snapshot budget",
      'Mark the backup failed in the manifest',
      'Count the failed backup',
      'Announce the failed backup',
    ];
    // Every task is either before begin, on the success path, or on the cleanup path: none is left uncaught.
    expect(tasks.map(([name]) => name).sort()).toEqual(
      [
        'Check the request and find the cluster',
        ...budget,
        ...successPath,
        ...afterCompleted,
        ...cleanup,
      ].sort(),
    );
    let state = 'Abort the backup on the host';
    const walked: string[] = [];
    while (asl.States[state]!.Type !== 'Fail') {
      walked.push(state);
      expect(catchTarget(state), `${state} goes on when it fails`).toBe(asl.States[state]!.Next);
      state = asl.States[state]!.Next as string;
    }
    expect(walked).toEqual(cleanup);
    expect(asl.States[state]).toMatchObject({ ErrorPath: '$.error.Error', CausePath: '$.error.Cause' });
  });

  test('begin and end run on the host through SSM with a task token, a heartbeat and a timeout', () => {
    const asl = stateMachineDefinition(synthesized.template);
    for (const step of [
      'Begin the backup on the host',
      'End the backup on the host',
      'Abort the backup on the host',
    ]) {
      expect(asl.States[step]).toMatchObject({
        Resource: 'arn:aws:states:::aws-sdk:ssm:sendCommand.waitForTaskToken',
        // The agent heartbeats by the configured HeartbeatSeconds, which the document passes on.
        Parameters: {
          Parameters: { 'taskToken.$': 'States.Array($$.Task.Token)', heartbeatSeconds: ['300'] },
        },
      });
      expect(asl.States[step]!.TimeoutSeconds).toBeGreaterThan(0);
    }
    expect(asl.States['Begin the backup on the host']!.HeartbeatSeconds).toBe(300);
    expect(asl.States['End the backup on the host']!.HeartbeatSeconds).toBe(300);
  });

  test("every Task state's HeartbeatSeconds is less than its TimeoutSeconds, the abort's too", () => {
    const asl = stateMachineDefinition(synthesized.template);
    const tasks = Object.entries(asl.States).filter(([, s]) => s.Type === 'Task');
    for (const [name, state] of tasks) {
      if (state.HeartbeatSeconds === undefined || state.TimeoutSeconds === undefined) continue;
      expect(state.HeartbeatSeconds as number, name).toBeLessThan(state.TimeoutSeconds as number);
    }
    // Its timeout (300 s) is no longer than the heartbeat: the timeout alone bounds the wait.
    expect(asl.States['Abort the backup on the host']).toMatchObject({ TimeoutSeconds: 300 });
    expect(asl.States['Abort the backup on the host']!.HeartbeatSeconds).toBeUndefined();
  });
});

describe("AWS's documented limits, at synth", () => {
  test('synth fails on a Task state whose heartbeat is not shorter than its timeout, naming the state and the rule', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'pgsnap-limits-'));
    const { app, stack } = synthStack(undefined, { deferSynth: true, outdir });
    const machine = stack.pgsnap.backup.stateMachine.node.defaultChild as CfnStateMachine;
    machine.definitionString = JSON.stringify({
      StartAt: 'Abort the backup on the host',
      States: {
        'Abort the backup on the host': {
          Type: 'Task',
          Resource: 'arn:aws:states:::aws-sdk:ssm:sendCommand.waitForTaskToken',
          HeartbeatSeconds: 300,
          TimeoutSeconds: 300,
          End: true,
        },
      },
    });
    try {
      expect(() => app.synth()).toThrow(
        /Task state "Abort the backup on the host": HeartbeatSeconds \(300\) must be less than TimeoutSeconds \(300\), as AWS's Task state requires/,
      );
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });

  test('synth fails on a schedule Scheduler would refuse, naming the schedule and the rule', () => {
    const input = {
      ...testEnvironment,
      clusters: [
        { ...testEnvironment.clusters[0]!, schedules: [{ name: 'never', expression: 'rate(0 hours)' }] },
      ],
    };
    expect(() => synthStack(input)).toThrow(
      /Schedule ".*orders-db-never.*": rate\(0 hours\) must be rate\(value unit\): a positive whole number/,
    );
  });
});

describe('the SSM documents', () => {
  test('run on EC2 instances only (TargetType)', () => {
    const documents = Object.values(synthesized.template.findResources('AWS::SSM::Document'));
    expect(documents.length).toBeGreaterThan(0);
    for (const document of documents) expect(document.Properties.TargetType).toBe('/AWS::EC2::Instance');
  });

  test('each document (the agent and the restore) holds every parameter to an anchored allowedPattern or a list of allowedValues', () => {
    const documents = Object.values(synthesized.template.findResources('AWS::SSM::Document')).map(
      (d) => d.Properties.Content.parameters as Record<string, Record<string, unknown>>,
    );
    // One for the backup's agent commands, one for the restore's: each stack runs exactly these two.
    expect(documents.map((parameters) => Object.keys(parameters).sort())).toEqual(
      expect.arrayContaining([
        Object.keys(agentDocumentParameters).sort(),
        Object.keys(restoreDocumentParameters).sort(),
      ]),
    );
    expect(documents).toHaveLength(2);
    for (const parameters of documents) {
      for (const [name, parameter] of Object.entries(parameters)) {
        const pattern = parameter.allowedPattern as string | undefined;
        const values = parameter.allowedValues as string[] | undefined;
        expect(pattern !== undefined || values !== undefined, name).toBe(true);
        // Anchored at both ends: a pattern that matches a part lets anything through around it.
        if (pattern) expect(pattern, name).toMatch(/^\^.*\$$/);
      }
    }
  });
});

describe('the Lambdas', () => {
  test('run the current Node.js runtime with structured JSON logs and tracing', () => {
    const functions = synthesized.template.findResources('AWS::Lambda::Function');
    // Six for the backup state machine and its schedules, two that take and return budget shares, ten for
    // the restore state machine (measure-restore-initialization the tenth), one that reports the age of the
    // newest backups, one that writes the cluster catalog at deploy.
    expect(Object.keys(functions)).toHaveLength(6 + 2 + 10 + 1 + 1);
    for (const fn of Object.values(functions)) {
      expect(fn.Properties).toMatchObject({
        Runtime: 'nodejs24.x',
        LoggingConfig: { LogFormat: 'JSON' },
        TracingConfig: { Mode: 'Active' },
      });
    }
  });

  test('the first steps know each cluster from the catalog the stack writes into its bucket, not from their environment', () => {
    const catalogs = Object.values(synthesized.template.findResources('Custom::PgsnapCatalog'));
    expect(catalogs).toHaveLength(1);
    const { Bucket, Key } = catalogs[0]!.Properties;
    expect(Key).toMatch(/^_pgsnap\/catalog-[0-9a-f]{16}\.json$/);
    const body = JSON.stringify(catalogText(catalogs[0]!.Properties));
    expect(body).toContain('i-0123456789abcdef0');
    expect(body).toContain('billing-db');
    const functions = Object.values(synthesized.template.findResources('AWS::Lambda::Function'));
    // The backup's first step and the restore's read it, and only it, by its URL.
    for (const description of ['pgsnap: checks a backup', 'pgsnap: checks a restore']) {
      const fn = functions.find((f) => f.Properties.Description?.startsWith(description));
      const variables = fn!.Properties.Environment.Variables;
      expect(variables.PGSNAP_CLUSTERS).toBeUndefined();
      expect(variables.PGSNAP_CATALOG).toEqual({ 'Fn::Join': ['', ['s3://', Bucket, `/${Key}`]] });
    }
  });
});

describe('least privilege', () => {
  const statements = (type: string) =>
    Object.values(synthesized.template.findResources(type)).flatMap(
      (p) => p.Properties.PolicyDocument.Statement as Array<Record<string, unknown>>,
    );

  test('snapshots can be created only with a cluster tag, tagged only by CreateSnapshots, deleted only when tagged', () => {
    const all = statements('AWS::IAM::Policy');
    const on = (action: string) => all.filter((s) => [s.Action].flat().includes(action));
    const snapshotCreate = on('ec2:CreateSnapshots').find((s) =>
      JSON.stringify(s.Resource).includes('snapshot/*'),
    );
    expect(snapshotCreate?.Condition).toEqual({
      StringEquals: { 'aws:RequestTag/pgsnap:cluster': ['orders-db', 'billing-db'] },
    });
    expect(on('ec2:CreateTags')[0]?.Condition).toEqual({
      StringEquals: { 'ec2:CreateAction': 'CreateSnapshots' },
    });
    expect(on('ec2:DeleteSnapshot')[0]?.Condition).toEqual({
      StringEquals: { 'aws:ResourceTag/pgsnap:cluster': ['orders-db', 'billing-db'] },
    });
  });

  test('SendCommand reaches the named instance, and tag-selected hosts only with their tags', () => {
    const sendCommand = statements('AWS::IAM::Policy').filter((s) =>
      [s.Action].flat().includes('ssm:SendCommand'),
    );
    expect(JSON.stringify(sendCommand)).toContain('instance/i-0123456789abcdef0');
    expect(sendCommand).toContainEqual(
      expect.objectContaining({
        Condition: {
          StringEquals: { 'ssm:resourceTag/pgsnap:cluster': 'billing-db', 'ssm:resourceTag/role': 'primary' },
        },
      }),
    );
  });

  test("the hosts' managed policy answers the state machine and reaches only its cluster's prefix", () => {
    const hostPolicy = statements('AWS::IAM::ManagedPolicy');
    expect(hostPolicy).toContainEqual(
      expect.objectContaining({
        Action: ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
        // No resource-level permissions for these actions: a state machine ARN here would match nothing.
        Resource: '*',
      }),
    );
    const objects = JSON.stringify(hostPolicy.filter((s) => [s.Action].flat().includes('s3:PutObject')));
    expect(objects).toContain('/pgsnap/orders-db/*');
    expect(objects).toContain('/billing-db/*');
  });
});

describe('schedules and alarms', () => {
  test('each configured schedule invokes start-backup for its cluster', () => {
    const all = Object.values(synthesized.template.findResources('AWS::Scheduler::Schedule'));
    // Besides them, one reports the age of the newest backups.
    expect(all.map((s) => s.Properties.Description)).toContain(
      'pgsnap: the age of the newest backups, and the fleet counts the alarms watch',
    );
    const schedules = all.filter((s) => JSON.stringify(s.Properties.Target.Arn).includes('StartBackup'));
    expect(schedules.map((s) => s.Properties.ScheduleExpression).sort()).toEqual([
      'cron(0 3 * * ? *)',
      'rate(1 hour)',
    ]);
    for (const schedule of schedules) {
      expect(JSON.parse(schedule.Properties.Target.Input)).toMatchObject({
        cluster: 'orders-db',
        trigger: 'schedule',
      });
    }
  });

  test('each cluster has the alarms only its own thresholds need: archiving stalled, pg_wal filling', () => {
    const alarms = Object.values(synthesized.template.findResources('AWS::CloudWatch::Alarm')).map(
      (a) => a.Properties,
    );
    for (const cluster of ['orders-db', 'billing-db']) {
      expect(
        alarms
          .filter((a) => JSON.stringify(a.Dimensions ?? []).includes(cluster))
          .map((a) => `${a.Namespace} ${a.MetricName}`)
          .sort(),
      ).toEqual(['pgsnap/hosts ArchiveLagSeconds', 'pgsnap/hosts WalVolumeFreeBytes']);
    }
  });

  test('the RPO, no-backup and silent-host alarms are one each for the fleet, over counts; no datum breaches', () => {
    const alarms = Object.values(synthesized.template.findResources('AWS::CloudWatch::Alarm')).map(
      (a) => a.Properties,
    );
    for (const count of ['ClustersOverRpo', 'ClustersWithoutBackup', 'ClustersWithoutArchiveHealth']) {
      const on = alarms.filter((a) => a.MetricName === count);
      expect(on, count).toHaveLength(1);
      expect(on[0], count).toMatchObject({
        Namespace: 'pgsnap',
        Statistic: 'Maximum',
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        Threshold: 1,
        TreatMissingData: 'breaching',
      });
      expect(on[0]!.Dimensions, count).toBeUndefined();
      expect(on[0]!.AlarmDescription, count).toMatch(/counted/);
      expect(JSON.stringify(on[0]!.AlarmActions), count).toMatch(/AlarmsTopic/);
    }
    // The reporter knows each cluster's RPO and whether its host publishes archive health, from the catalog.
    const report = Object.values(synthesized.template.findResources('AWS::Lambda::Function')).find((f) =>
      String(f.Properties.Description).includes('counts the clusters over their objectives'),
    )!;
    expect(Object.keys(report.Properties.Environment.Variables).sort()).toEqual([
      'PGSNAP_CATALOG',
      'PGSNAP_METRICS_NAMESPACE',
    ]);
    const freshness = catalogOf(synthesized.template).freshness!;
    // Both clusters share the defaults: 26 hours, and a host that publishes archive health.
    expect(freshness.defaults).toEqual({ rpoSeconds: 93600, watchArchiving: true });
    expect(JSON.stringify(freshness.clusters)).not.toMatch(/rpoSeconds|watchArchiving/);
    expect(freshness.clusters.map((c) => c.name)).toEqual(['orders-db', 'billing-db']);
    const getMetricData = Object.values(synthesized.template.findResources('AWS::IAM::Policy'))
      .flatMap((p) => p.Properties.PolicyDocument.Statement as Array<Record<string, unknown>>)
      .filter((st) => [st.Action].flat().includes('cloudwatch:GetMetricData'));
    expect(getMetricData).toEqual([expect.objectContaining({ Resource: '*' })]);
  });

  test('a cluster with drills gets a drill schedule, is counted by the no-recent-drill alarm and, with rtoMinutes, has an RTO alarm, both to the topic', () => {
    const { template } = synthStack({
      ...testEnvironment,
      clusters: [
        {
          ...testEnvironment.clusters[0]!,
          drills: {
            schedule: 'cron(0 6 ? * SUN *)',
            launch: { launchTemplate: 'pgsnap-drill', subnetId: 'subnet-0123456789abcdef0' },
            days: 7,
            rtoMinutes: 15,
          },
        },
        testEnvironment.clusters[1]!,
      ],
    });
    const drill = Object.values(
      template.findResources('AWS::Scheduler::Schedule', {
        Properties: { Description: 'pgsnap restore drill of orders-db' },
      }),
    );
    expect(drill).toHaveLength(1);
    expect(drill[0]!.Properties.ScheduleExpression).toBe('cron(0 6 ? * SUN *)');
    // Through start-drill, which starts the restore state machine in an execution named after the cluster
    // and the scheduled time (a second delivery drills once).
    expect(JSON.stringify(drill[0]!.Properties.Target.Arn)).toMatch(/StartDrill/);
    const startDrill = Object.values(template.findResources('AWS::Lambda::Function')).find(
      (f) => f.Properties.Environment?.Variables?.PGSNAP_RESTORE_STATE_MACHINE_ARN,
    )!;
    expect(JSON.stringify(startDrill.Properties.Environment.Variables)).toMatch(/RestoreStateMachine/);
    expect(JSON.parse(drill[0]!.Properties.Target.Input)).toMatchObject({
      cluster: 'orders-db',
      backupId: 'latest',
      mode: 'drill',
      instance: { launch: { launchTemplate: 'pgsnap-drill', subnetId: 'subnet-0123456789abcdef0' } },
      scheduledTime: '<aws.scheduler.scheduled-time>',
    });
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    const onOrders = (metric: string) =>
      alarms.find((a) => a.MetricName === metric && JSON.stringify(a.Dimensions).includes('orders-db'));
    // Days since the last successful drill: report-backup-age counts orders-db after its 7 days, one alarm.
    const noDrill = alarms.filter((a) => a.MetricName === 'ClustersWithoutRecentDrill');
    expect(noDrill).toHaveLength(1);
    expect(noDrill[0]).toMatchObject({ Namespace: 'pgsnap', Threshold: 1, TreatMissingData: 'breaching' });
    expect(JSON.stringify(noDrill[0]!.AlarmActions)).toMatch(/AlarmsTopic/);
    // orders-db alone has drills, so its 7 days are its own or the environment's default.
    const freshness = catalogOf(template).freshness!;
    const orders = { ...freshness.defaults, ...freshness.clusters.find((c) => c.name === 'orders-db') };
    expect(orders).toMatchObject({ drills: true, drillDays: 7 });
    expect(freshness.clusters.find((c) => c.name === 'billing-db')!.drills).toBeUndefined();
    expect(onOrders('DrillRtoSeconds')).toMatchObject({
      Namespace: 'pgsnap',
      Statistic: 'Maximum',
      ComparisonOperator: 'GreaterThanThreshold',
      Threshold: 900,
      TreatMissingData: 'notBreaching',
    });
    for (const metric of ['DrillRtoSeconds']) {
      expect(JSON.stringify(onOrders(metric)!.AlarmActions), metric).toMatch(/AlarmsTopic/);
    }
    // billing-db has no drills: no drill alarm names it.
    expect(
      alarms.filter(
        (a) =>
          /Drill/.test(String(a.MetricName)) && JSON.stringify(a.Dimensions ?? []).includes('billing-db'),
      ),
    ).toEqual([]);
  });

  test('the archive alarms watch walRpoMinutes and walMinFreeMiB, and say what to check first', () => {
    const alarms = Object.values(synthesized.template.findResources('AWS::CloudWatch::Alarm'))
      .map((a) => a.Properties)
      .filter((a) => a.Namespace === 'pgsnap/hosts' && JSON.stringify(a.Dimensions).includes('orders-db'));
    const byMetric = Object.fromEntries(alarms.map((a) => [a.MetricName, a]));
    expect(byMetric.ArchiveLagSeconds).toMatchObject({
      Statistic: 'Maximum',
      ComparisonOperator: 'GreaterThanThreshold',
      Threshold: 15 * 60,
      TreatMissingData: 'notBreaching',
    });
    expect(byMetric.WalVolumeFreeBytes).toMatchObject({
      Statistic: 'Minimum',
      ComparisonOperator: 'LessThanThreshold',
      Threshold: 2048 * 1024 * 1024,
    });
    // A silent host is the fleet's ClustersWithoutArchiveHealth alarm, not one per cluster.
    expect(Object.keys(byMetric).sort()).toEqual(['ArchiveLagSeconds', 'WalVolumeFreeBytes']);
    for (const alarm of alarms) {
      expect(alarm.AlarmDescription).toMatch(/Check first/);
      expect(alarm.AlarmActions).toHaveLength(1);
    }
  });

  test('failure and completion events reach the notification topic', () => {
    synthesized.template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['pgsnap'],
        'detail-type': ['pgsnap backup failed', 'pgsnap backup completed'],
      },
    });
    synthesized.template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'dba@example.com',
    });
  });
});
