/** The drill host kit (infra/restore/drill-kit.ts) and the stack's outputs, as synthesized and as cdk-nag sees them. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { synthStack, testEnvironment } from '../support/backup-stack.ts';

describe('the drill host kit and the outputs', () => {
  const withKit: typeof testEnvironment = {
    ...testEnvironment,
    clusters: [
      {
        ...testEnvironment.clusters[0]!,
        drills: {
          schedule: 'cron(0 6 ? * SUN *)',
          launch: { subnetId: 'subnet-0123456789abcdef0' },
          kit: { imageId: 'ami-0123456789abcdef0', vpcId: 'vpc-0123456789abcdef0' },
          fullSpeedMinutes: 60,
        },
      },
      testEnvironment.clusters[1]!,
    ],
  };

  test('the stack outputs the repository bucket, both state machine ARNs and the documents', () => {
    const outputs = synthStack().template.toJSON().Outputs as Record<string, { Value: unknown }>;
    // The outputs' logical ids are the construct path's: Pgsnap<Name><hash>.
    expect(
      Object.keys(outputs)
        .map((id) => id.replace(/^Pgsnap(\w+?)[0-9A-F]{8}$/, '$1'))
        .sort(),
    ).toEqual([
      'AgentDocumentName',
      'BackupStateMachineArn',
      'RepositoryBucket',
      'RestoreDocumentName',
      'RestoreStateMachineArn',
    ]);
    const restore = Object.entries(outputs).find(([id]) => id.startsWith('PgsnapRestoreStateMachineArn'))!;
    expect(JSON.stringify(restore[1].Value)).toMatch(/RestoreStateMachine/);
  });

  test('a cluster with a kit gets a pgsnap- role with AmazonSSMManagedInstanceCore, a launch template with IMDSv2 and no public address, and its drills launch it', () => {
    const { template } = synthStack(withKit);
    const name = `pgsnap-${testEnvironment.name}-drill-orders-db`;
    const templates = Object.values(template.findResources('AWS::EC2::LaunchTemplate'));
    expect(templates).toHaveLength(1);
    const data = templates[0]!.Properties.LaunchTemplateData;
    expect(templates[0]!.Properties.LaunchTemplateName).toBe(name);
    expect(data.MetadataOptions.HttpTokens).toBe('required');
    expect(data.NetworkInterfaces).toEqual([
      expect.objectContaining({ DeviceIndex: 0, AssociatePublicIpAddress: false }),
    ]);
    expect(data.ImageId).toBe('ami-0123456789abcdef0');
    const roles = Object.values(template.findResources('AWS::IAM::Role', { Properties: { RoleName: name } }));
    expect(roles).toHaveLength(1);
    expect(JSON.stringify(roles[0]!.Properties.ManagedPolicyArns)).toContain('AmazonSSMManagedInstanceCore');
    // What the kit's role may do is the cluster's restore target policy, attached to it: no policy of its own.
    const roleId = Object.keys(
      template.findResources('AWS::IAM::Role', { Properties: { RoleName: name } }),
    )[0]!;
    const policies = Object.values(template.findResources('AWS::IAM::ManagedPolicy'));
    expect(
      policies
        .map((p) => p.Properties.ManagedPolicyName as string)
        .filter((n) => !n.includes('-host-'))
        .sort(),
    ).toEqual([
      `pgsnap-${testEnvironment.name}-restore-billing-db`,
      `pgsnap-${testEnvironment.name}-restore-orders-db`,
    ]);
    expect(
      policies.find(
        (p) => p.Properties.ManagedPolicyName === `pgsnap-${testEnvironment.name}-restore-orders-db`,
      )!.Properties.Roles,
    ).toEqual([{ Ref: roleId }]);
    const group = Object.values(template.findResources('AWS::EC2::SecurityGroup'))[0]!.Properties;
    expect(group.SecurityGroupIngress).toBeUndefined();
    expect(group.SecurityGroupEgress).toEqual([expect.objectContaining({ FromPort: 443, ToPort: 443 })]);
    const drill = Object.values(
      template.findResources('AWS::Scheduler::Schedule', {
        Properties: { Description: 'pgsnap restore drill of orders-db' },
      }),
    )[0]!;
    expect(JSON.parse(drill.Properties.Target.Input)).toMatchObject({
      instance: { launch: { launchTemplate: name, subnetId: 'subnet-0123456789abcdef0' } },
      fullSpeedMinutes: 60,
      scheduledTime: '<aws.scheduler.scheduled-time>',
    });
    // Through start-drill, which names the execution after the cluster and the scheduled time.
    expect(JSON.stringify(drill.Properties.Target.Arn)).toMatch(/StartDrill/);
  });

  test('cdk-nag passes with the kit, every finding acknowledged with its reason', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'pgsnap-nag-kit-'));
    try {
      const { app } = synthStack(withKit, { nag: true, outdir });
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
});
