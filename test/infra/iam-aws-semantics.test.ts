/**
 * The restore's EC2 calls as AWS authorizes them (issue 30), with the
 * requests derived from what the code actually sends and from AWS's documented
 * semantics (local/aws-facts.ts, test/support/aws-requests.ts), decided by the
 * IAM evaluator against the synthesized stacks: RunInstances per created
 * resource type with that type's tags, the KMS grant EC2 makes as the caller
 * on attach and launch, an AMI by SSM parameter, a subnet shared through RAM,
 * and the Scheduler roles trusting only their own account's schedules.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AttachVolumeCommand,
  DescribeInstancesCommand,
  DescribeLaunchTemplateVersionsCommand,
  DescribeVolumesCommand,
  type EC2Client,
  RunInstancesCommand,
  type RunInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import { App, type CfnElement, type Stack } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '#domain/repository/manifest';
import type { RestoreVolume } from '#domain/repository/restore-record';
import { targetInstance } from '#domain/restore/instance';
import { attachRestoreVolumes, restoreTags } from '#domain/restore/volumes';
import { environmentSchema } from '../../infra/config/config.ts';
import { DrStack } from '../../infra/dr-stack.ts';
import { HandlerFunction } from '../../infra/lambda/handler-function.ts';
import { PgsnapStack } from '../../infra/pgsnap-stack.ts';
import { awsFacts } from '../../local/aws-facts.ts';
import {
  attachVolumeRequests,
  kmsRequestsOf,
  runInstancesRequests,
  tagsFor,
} from '../support/aws-requests.ts';
import { ResolvedTemplate } from '../support/cloudformation.ts';
import { type IamRequest, IamWorld, type Principal } from '../support/iam.ts';

const source = { account: '111122223333', region: 'eu-west-1' };
const dr = { account: '444455556666', region: 'us-west-2' };
const restoreId = 'r-20261121T150000Z-0c0ffe';
/** A subnet another account (the network account) shares with the source account through RAM. */
const sharedSubnetArn = `arn:aws:ec2:${source.region}:999988887777:subnet/subnet-0123456789abcdef0`;
/** A customer managed key of the source account that encrypts the volumes (not in the templates). */
const volumeKeyArn = `arn:aws:kms:${source.region}:${source.account}:key/0b5e7c1d-2f3a-4b6c-8d9e-0f1a2b3c4d5e`;

interface Deployed {
  world: IamWorld;
  role: (handler: string, side?: 'source' | 'dr') => Principal;
  drKeyArn: string;
  templates: ResolvedTemplate[];
}

function logicalIdOf(stack: Stack, construct: IConstruct): string {
  return stack.getLogicalId((construct.node.defaultChild ?? construct) as CfnElement);
}

function deploy(): Deployed {
  const outdir = mkdtempSync(join(tmpdir(), 'pgsnap-iam-aws-'));
  try {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] }, outdir });
    const environment = environmentSchema.parse({
      name: 'prod',
      ...source,
      clusters: [{ name: 'orders-db', instance: { instanceId: 'i-0123456789abcdef0' } }],
      dr: { ...dr, externalId: 'pgsnap-prod-7f3a9c2e' },
    });
    const sourceStack = new PgsnapStack(app, 'pgsnap-prod', { environment });
    const drStack = new DrStack(app, 'pgsnap-prod-dr', { environment });
    const assembly = app.synth();
    const sourceTemplate = new ResolvedTemplate(assembly.getStackByName(sourceStack.stackName).template, {
      ...source,
      stackName: sourceStack.stackName,
    });
    const drTemplate = new ResolvedTemplate(assembly.getStackByName(drStack.stackName).template, {
      ...dr,
      stackName: drStack.stackName,
    });
    const defaultKeyPolicy = (account: string) => ({
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { AWS: `arn:aws:iam::${account}:root` },
          Action: 'kms:*',
          Resource: '*',
        },
      ],
    });
    const world = new IamWorld([sourceTemplate, drTemplate], {
      [volumeKeyArn]: defaultKeyPolicy(source.account),
      // The RAM share: the owner lets the participant account launch into the subnet; IAM decides the rest.
      [sharedSubnetArn]: {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { AWS: `arn:aws:iam::${source.account}:root` },
            Action: 'ec2:RunInstances',
            Resource: sharedSubnetArn,
          },
        ],
      },
    });
    const roleOf = (stack: Stack, template: ResolvedTemplate, handler: string) => {
      const fn = stack.node
        .findAll()
        .find((c): c is HandlerFunction => c instanceof HandlerFunction && c.handlerName === handler);
      if (!fn) throw new Error(`no ${handler} in ${stack.stackName}`);
      const arn = template.getAtt(logicalIdOf(stack, fn.role!), 'Arn');
      return world.roles.find((r) => r.arn === arn)!;
    };
    return {
      world,
      role: (handler, side = 'source') =>
        side === 'source'
          ? roleOf(sourceStack, sourceTemplate, handler)
          : roleOf(drStack, drTemplate, handler),
      drKeyArn: drTemplate.getAtt(logicalIdOf(drStack, drStack.key), 'Arn'),
      templates: [sourceTemplate, drTemplate],
    };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

/** An EC2 that records what the restore code sends and answers as AWS would, for a launch and an attach. */
function recordingEc2(template: { networkInterfaces?: boolean } = {}) {
  const sent: unknown[] = [];
  const client = {
    async send(command: unknown) {
      sent.push(command);
      if (command instanceof DescribeLaunchTemplateVersionsCommand) {
        return {
          LaunchTemplateVersions: [
            {
              LaunchTemplateData: template.networkInterfaces
                ? { NetworkInterfaces: [{ DeviceIndex: 0, Groups: ['sg-0123456789abcdef0'] }] }
                : {},
            },
          ],
        };
      }
      if (command instanceof RunInstancesCommand) {
        return {
          Instances: [{ InstanceId: 'i-0e1b2c3d4e5f60001', Placement: { AvailabilityZone: 'eu-west-1a' } }],
        };
      }
      if (command instanceof DescribeInstancesCommand) {
        return {
          Reservations: [{ Instances: [{ InstanceId: 'i-0e1b2c3d4e5f60001', RootDeviceName: '/dev/xvda' }] }],
        };
      }
      if (command instanceof DescribeVolumesCommand) return { Volumes: [] };
      return {};
    },
  };
  return { client: client as unknown as EC2Client, sent };
}

async function launchInput(
  template: { networkInterfaces?: boolean } = {},
  subnetId = 'subnet-0123456789abcdef0',
) {
  const ec2 = recordingEc2(template);
  await targetInstance(
    ec2.client,
    { restoreId, cluster: 'orders-db', instance: { launch: { launchTemplate: 'pgsnap-drill', subnetId } } },
    {} as Manifest,
  );
  const run = ec2.sent.find((c): c is RunInstancesCommand => c instanceof RunInstancesCommand)!;
  return run.input as RunInstancesCommandInput;
}

async function refusedOf(world: IamWorld, role: Principal, requests: IamRequest[]): Promise<string[]> {
  const refused: string[] = [];
  for (const request of requests) {
    const decision = await world.decide(role, request);
    if (decision !== 'Allowed') refused.push(`${request.action} on ${request.resource} → ${decision}`);
  }
  return refused;
}

let d: Deployed;
beforeAll(() => {
  d = deploy();
});

const image = (region: string) => `arn:aws:ec2:${region}::image/ami-0123456789abcdef0`;

describe('RunInstances, authorized per resource it creates', () => {
  it('the launch of a drill instance is allowed for the instance, its root volume and its network interface, each with its own tags', async () => {
    const input = await launchInput();
    const requests = runInstancesRequests(input, source, { imageArn: image(source.region) });
    expect(requests.filter((r) => r.action === 'ec2:RunInstances').map((r) => r.resource)).toEqual(
      expect.arrayContaining(
        awsFacts.runInstancesCreates.resources.map((t) => expect.stringContaining(`:${t}/`)),
      ),
    );
    expect(await refusedOf(d.world, d.role('find-restore-instance'), requests)).toEqual([]);
  });

  it('the same launch from the DR stack, in the DR account, is allowed', async () => {
    const input = await launchInput();
    const requests = runInstancesRequests(input, dr, { imageArn: image(dr.region) });
    expect(await refusedOf(d.world, d.role('find-restore-instance', 'dr'), requests)).toEqual([]);
  });

  it('the volumes made with the instance never carry the restore-id the release finds its volumes by', async () => {
    const input = await launchInput();
    const volumeTags = tagsFor(input.TagSpecifications, 'volume');
    expect(volumeTags.map((t) => t.Key)).toContain(restoreTags.cluster);
    expect(volumeTags.map((t) => t.Key)).toContain(restoreTags.restoreRoot);
    expect(volumeTags.map((t) => t.Key)).not.toContain(restoreTags.restoreId);
    expect(tagsFor(input.TagSpecifications, 'instance')).toContainEqual({
      Key: restoreTags.restoreId,
      Value: restoreId,
    });
  });

  it('a launch request without tags for its volumes is refused, as AWS would refuse it', async () => {
    const input = await launchInput();
    const untagged = {
      ...input,
      TagSpecifications: input.TagSpecifications?.filter((s) => s.ResourceType === 'instance'),
    };
    const refused = await refusedOf(
      d.world,
      d.role('find-restore-instance'),
      runInstancesRequests(untagged, source, { imageArn: image(source.region) }),
    );
    expect(refused).toEqual([
      expect.stringMatching(/^ec2:RunInstances on .*:volume\/\* → ImplicitlyDenied$/),
    ]);
  });

  it('a launch template with network interfaces gets the subnet in them, never as an instance-level SubnetId', async () => {
    const input = await launchInput({ networkInterfaces: true });
    expect(input.SubnetId).toBeUndefined();
    expect(input.NetworkInterfaces).toEqual([
      { DeviceIndex: 0, Groups: ['sg-0123456789abcdef0'], SubnetId: 'subnet-0123456789abcdef0' },
    ]);
    const plain = await launchInput();
    expect(plain.SubnetId).toBe('subnet-0123456789abcdef0');
    expect(plain.NetworkInterfaces).toBeUndefined();
  });

  it('a subnet shared through RAM (another account in its ARN) is allowed', async () => {
    const input = await launchInput();
    const requests = runInstancesRequests(input, source, {
      imageArn: image(source.region),
      subnetArn: sharedSubnetArn,
    });
    expect(await refusedOf(d.world, d.role('find-restore-instance'), requests)).toEqual([]);
  });

  it('an AMI given as resolve:ssm: is read with ssm:GetParameters', async () => {
    // AWS's public parameters (arn:aws:ssm:<region>::parameter/aws/service/…) carry no account, which the
    // evaluator cannot place; the policy names them beside the account's own.
    const requests = [`arn:aws:ssm:${source.region}:${source.account}:parameter/pgsnap/drill-ami`].map(
      (resource) => ({ action: 'ssm:GetParameters', resource }),
    );
    expect(await refusedOf(d.world, d.role('find-restore-instance'), requests)).toEqual([]);
  });

  it('a launch template whose root volume is under a customer managed key: EC2 uses the key as the caller', async () => {
    const requests = kmsRequestsOf('RunInstances', volumeKeyArn, source);
    expect(await refusedOf(d.world, d.role('find-restore-instance'), requests)).toEqual([]);
  });
});

describe('AttachVolume of a volume under a customer managed key', () => {
  const volume: RestoreVolume = {
    snapshotId: 'snap-0a1b2c3d4e5f60001',
    volumeId: 'vol-0e1b2c3d4e5f60001',
    source: {
      volumeType: 'gp3',
      sizeGiB: 100,
      encrypted: true,
      mountPoint: '/var/lib/postgresql',
      holds: [],
    },
  } as unknown as RestoreVolume;
  const madeTags = { [restoreTags.cluster]: 'orders-db', [restoreTags.restoreId]: restoreId };

  async function attachInput() {
    const ec2 = recordingEc2();
    await attachRestoreVolumes(ec2.client, [volume], 'i-0e1b2c3d4e5f60001');
    return ec2.sent.find((c): c is AttachVolumeCommand => c instanceof AttachVolumeCommand)!.input;
  }

  it('a source restore: the attach Lambda may have EC2 create the grant on the volume key', async () => {
    const requests = attachVolumeRequests(await attachInput(), source, {
      tags: madeTags,
      keyArn: volumeKeyArn,
    });
    expect(requests.map((r) => r.action)).toContain('kms:CreateGrant');
    expect(await refusedOf(d.world, d.role('attach-restore-volumes'), requests)).toEqual([]);
  });

  it('a DR restore: the DR copies are under the DR key, and the DR attach Lambda may have the grant made on it', async () => {
    const requests = attachVolumeRequests(await attachInput(), dr, { tags: madeTags, keyArn: d.drKeyArn });
    expect(await refusedOf(d.world, d.role('attach-restore-volumes', 'dr'), requests)).toEqual([]);
  });

  it('a grant that is not for an AWS resource is refused', async () => {
    const decision = await d.world.decide(d.role('attach-restore-volumes'), {
      action: 'kms:CreateGrant',
      resource: volumeKeyArn,
      context: {
        'kms:ViaService': `ec2.${source.region}.amazonaws.com`,
        'kms:GrantIsForAWSResource': 'false',
      },
    });
    expect(decision).not.toBe('Allowed');
  });
});

describe('the Scheduler roles', () => {
  it('trust EventBridge Scheduler only for their own account’s schedules (aws:SourceAccount)', () => {
    const trusts: Array<{ account: string; statement: Record<string, unknown> }> = [];
    for (const t of d.templates) {
      for (const [, role] of t.ofType('AWS::IAM::Role')) {
        const doc = t.resolve(role.Properties?.AssumeRolePolicyDocument) as {
          Statement: Array<Record<string, unknown>>;
        };
        for (const statement of doc.Statement) {
          const service = (statement.Principal as { Service?: string } | undefined)?.Service;
          if (service === 'scheduler.amazonaws.com') trusts.push({ account: t.where.account, statement });
        }
      }
    }
    expect(trusts.length).toBeGreaterThan(0);
    for (const { account, statement } of trusts) {
      expect(statement.Condition).toEqual({ StringEquals: { 'aws:SourceAccount': account } });
    }
  });
});
