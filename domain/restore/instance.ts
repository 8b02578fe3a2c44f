/**
 * The restore's target instance: one the operator names, which must not be
 * the source cluster's own host, or one launched from a launch template for
 * the restore (drills) and terminated by its cleanup, found by its tag.
 */
import {
  DescribeInstancesCommand,
  DescribeLaunchTemplateVersionsCommand,
  DescribeVolumesCommand,
  type EC2Client,
  type Instance,
  type InstanceNetworkInterfaceSpecification,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { ec2Errors, isEventual, type Patience, retrying } from '../ebs/ec2-api.ts';
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
    if ((error as Error).name === ec2Errors.instanceNotFound) return undefined;
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
    const template = {
      ...(/^lt-[0-9a-f]{8,17}$/.test(launchTemplate)
        ? { LaunchTemplateId: launchTemplate }
        : { LaunchTemplateName: launchTemplate }),
      Version: version ?? '$Default',
    };
    const name = `pgsnap ${request.cluster} restore ${request.restoreId}`;
    const output = await ec2.send(
      new RunInstancesCommand({
        LaunchTemplate: template,
        ...(await subnetOverride(ec2, template, subnetId)),
        MinCount: 1,
        MaxCount: 1,
        ClientToken: request.restoreId,
        /*
         * RunInstances creates the instance, its volumes and its network interfaces, and IAM authorizes
         * each with the tags given for its own type. The volumes it creates (the root volume, the
         * template's) carry restoreRoot, never restoreId: they go with the instance on termination,
         * and the release of the restore's volumes, which finds them by restoreId, never touches them.
         */
        TagSpecifications: [
          {
            ResourceType: 'instance',
            Tags: [
              { Key: restoreTags.restoreId, Value: request.restoreId },
              { Key: restoreTags.cluster, Value: request.cluster },
              { Key: 'Name', Value: name },
            ],
          },
          {
            ResourceType: 'volume',
            Tags: [
              { Key: restoreTags.restoreRoot, Value: request.restoreId },
              { Key: restoreTags.cluster, Value: request.cluster },
              { Key: 'Name', Value: `${name} (launched with the instance)` },
            ],
          },
        ],
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

/**
 * The subnet of the request, where RunInstances takes it. A launch template
 * that defines network interfaces refuses an instance-level SubnetId
 * ("Network interfaces and an instance-level subnet ID may not be specified on
 * the same request", InvalidParameterCombination): the subnet then goes into
 * the template's interfaces, which the request's NetworkInterfaces replace.
 */
async function subnetOverride(
  ec2: EC2Client,
  template: { LaunchTemplateId?: string; LaunchTemplateName?: string; Version: string },
  subnetId: string | undefined,
): Promise<{ SubnetId?: string; NetworkInterfaces?: InstanceNetworkInterfaceSpecification[] }> {
  if (!subnetId) return {};
  const { Version, ...named } = template;
  const output = await ec2.send(new DescribeLaunchTemplateVersionsCommand({ ...named, Versions: [Version] }));
  const interfaces = output.LaunchTemplateVersions?.[0]?.LaunchTemplateData?.NetworkInterfaces ?? [];
  if (interfaces.length === 0) return { SubnetId: subnetId };
  return {
    NetworkInterfaces: interfaces.map((i) => ({
      DeviceIndex: i.DeviceIndex ?? 0,
      ...(i.Groups ? { Groups: i.Groups } : {}),
      ...(i.AssociatePublicIpAddress !== undefined
        ? { AssociatePublicIpAddress: i.AssociatePublicIpAddress }
        : {}),
      ...(i.DeleteOnTermination !== undefined ? { DeleteOnTermination: i.DeleteOnTermination } : {}),
      ...(i.Description ? { Description: i.Description } : {}),
      ...(i.InterfaceType ? { InterfaceType: i.InterfaceType } : {}),
      ...(i.NetworkCardIndex !== undefined ? { NetworkCardIndex: i.NetworkCardIndex } : {}),
      SubnetId: (i.DeviceIndex ?? 0) === 0 ? subnetId : i.SubnetId,
    })),
  };
}

/**
 * The instance's state; `not visible yet` when EC2 answers NotFound, which
 * right after RunInstances "doesn't mean the instance doesn't exist" (EC2 API,
 * eventual consistency): the caller decides how long that may last.
 */
export async function instanceState(ec2: EC2Client, instanceId: string): Promise<string> {
  return (await describeInstance(ec2, instanceId))?.State?.Name ?? 'not visible yet';
}

/**
 * Terminates the instances the restore launched: the one its record names
 * and any found by its tag (a launch whose step never returned), since a
 * tag-filtered Describe lags a launch as much as the instance's id does. A
 * NotFound on termination "doesn't mean the instance was or will be
 * terminated": it is asked again, with backoff.
 */
export async function terminateLaunched(
  ec2: EC2Client,
  restoreId: string,
  recorded: string[] = [],
  patience?: Patience,
): Promise<string[]> {
  const output = await ec2.send(
    new DescribeInstancesCommand({
      Filters: [
        { Name: `tag:${restoreTags.restoreId}`, Values: [restoreId] },
        { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
      ],
    }),
  );
  const tagged = (output.Reservations ?? []).flatMap((r) => (r.Instances ?? []).map((i) => i.InstanceId!));
  const ids = [...new Set([...recorded, ...tagged])];
  if (ids.length > 0) {
    await retrying(
      () => ec2.send(new TerminateInstancesCommand({ InstanceIds: ids })),
      isEventual(ec2Errors.instanceNotFound),
      patience,
    );
  }
  return ids;
}
