/**
 * The restore's target instance: one the operator names, which must not be
 * the source cluster's own host, or one launched from a launch template for
 * the restore (drills) and terminated by its cleanup, found by its tag.
 */
import {
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  type EC2Client,
  type Instance,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { InstanceNotFoundError, PreconditionError } from '../errors.ts';
import type { Manifest } from '../repository/manifest.ts';
import type { InstanceRequest } from './request.ts';
import { restoreTags } from './volumes.ts';

export interface TargetInstance {
  instanceId: string;
  availabilityZone: string;
  launched: boolean;
  state: string;
}

async function describeInstance(ec2: EC2Client, instanceId: string): Promise<Instance | undefined> {
  try {
    const output = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    return output.Reservations?.[0]?.Instances?.[0];
  } catch (error) {
    if ((error as Error).name === 'InvalidInstanceID.NotFound') return undefined;
    throw error;
  }
}

/** The instance that has the source volumes of the backup attached, if it is in this account and region. */
async function sourceInstanceIds(ec2: EC2Client, manifest: Manifest): Promise<string[]> {
  const volumeIds = manifest.snapshots.map((s) => s.volumeId).filter((id): id is string => Boolean(id));
  if (volumeIds.length === 0) return [];
  const output = await ec2.send(
    new DescribeVolumesCommand({ Filters: [{ Name: 'volume-id', Values: volumeIds }] }),
  );
  return (output.Volumes ?? []).flatMap((v) => (v.Attachments ?? []).map((a) => a.InstanceId!));
}

/**
 * The instance to restore onto: launched (RunInstances from the template,
 * tagged with the restore, ClientToken the restoreId so a retried step
 * launches one), or the given one, refused when it runs the source cluster.
 */
export async function targetInstance(
  ec2: EC2Client,
  request: { instance: InstanceRequest; restoreId: string; cluster: string },
  manifest: Manifest,
): Promise<TargetInstance> {
  if ('launch' in request.instance) {
    const { launchTemplate, version, subnetId } = request.instance.launch;
    const byId = /^lt-[0-9a-f]{8,17}$/.test(launchTemplate);
    const tags = [
      { Key: restoreTags.restoreId, Value: request.restoreId },
      { Key: restoreTags.cluster, Value: request.cluster },
      { Key: 'Name', Value: `pgsnap ${request.cluster} restore ${request.restoreId}` },
    ];
    const output = await ec2.send(
      new RunInstancesCommand({
        LaunchTemplate: {
          ...(byId ? { LaunchTemplateId: launchTemplate } : { LaunchTemplateName: launchTemplate }),
          Version: version ?? '$Default',
        },
        SubnetId: subnetId,
        MinCount: 1,
        MaxCount: 1,
        ClientToken: request.restoreId,
        TagSpecifications: [{ ResourceType: 'instance', Tags: tags }],
      }),
    );
    const instance = output.Instances?.[0];
    if (!instance?.InstanceId)
      throw new InstanceNotFoundError(`RunInstances from ${launchTemplate} returned no instance`);
    return {
      instanceId: instance.InstanceId,
      availabilityZone: instance.Placement?.AvailabilityZone ?? '',
      launched: true,
      state: instance.State?.Name ?? 'pending',
    };
  }
  const { instanceId } = request.instance;
  const instance = await describeInstance(ec2, instanceId);
  if (!instance) {
    throw new InstanceNotFoundError(`instance ${instanceId} does not exist in this account and region`);
  }
  if ((await sourceInstanceIds(ec2, manifest)).includes(instanceId)) {
    throw new PreconditionError(
      `instance ${instanceId} is the host of ${manifest.cluster} (its volumes are attached there): a restore never ` +
        'touches the source cluster; name another instance, or launch one with --launch-template',
    );
  }
  return {
    instanceId,
    availabilityZone: instance.Placement?.AvailabilityZone ?? '',
    launched: false,
    state: instance.State?.Name ?? 'unknown',
  };
}

/** Whether the instance is running (a launched one must be before its volumes are attached). */
export async function instanceState(ec2: EC2Client, instanceId: string): Promise<string> {
  return (await describeInstance(ec2, instanceId))?.State?.Name ?? 'gone';
}

/** Terminates the instances the restore launched, found by its tag; returns their ids. */
export async function terminateLaunched(ec2: EC2Client, restoreId: string): Promise<string[]> {
  const output = await ec2.send(
    new DescribeInstancesCommand({
      Filters: [
        { Name: `tag:${restoreTags.restoreId}`, Values: [restoreId] },
        { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
      ],
    }),
  );
  const ids = (output.Reservations ?? []).flatMap((r) => (r.Instances ?? []).map((i) => i.InstanceId!));
  if (ids.length > 0) await ec2.send(new TerminateInstancesCommand({ InstanceIds: ids }));
  return ids;
}
