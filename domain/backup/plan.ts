/**
 * The first step of a backup: check the request, find the cluster's host and
 * settings. Whether another backup of the cluster runs is the host's answer at
 * begin (BackupInProgressError): nothing here lists executions.
 */
import { DescribeInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { type Catalog, type CatalogCluster, describeConfigured, findCluster } from '../catalog.ts';
import { InstanceNotFoundError, InvalidInputError } from '../errors.ts';
import { backupIdOfExecution, parseExecutionInput } from './execution.ts';

/** What the state machine's Lambdas know of each cluster (domain/catalog.ts). */
export type ClusterTarget = CatalogCluster;

/** The state every later step of the state machine reads. */
export interface BackupPlan {
  backupId: string;
  cluster: string;
  label: string;
  fast: boolean;
  trigger: string;
  instanceId: string;
  volumeIds: string[];
  maxBackupMinutes: number;
  repository: string;
}

export interface PlanRequest {
  input: unknown;
  executionName: string;
  executionArn: string;
  executionStartTime: string;
  stateMachineArn: string;
}

async function findInstance(ec2: EC2Client, target: ClusterTarget): Promise<string> {
  if (target.instanceId) return target.instanceId;
  const tags = Object.entries(target.instanceTags ?? {});
  const found = await ec2.send(
    new DescribeInstancesCommand({
      Filters: [
        ...tags.map(([key, value]) => ({ Name: `tag:${key}`, Values: [value] })),
        { Name: 'instance-state-name', Values: ['running'] },
      ],
    }),
  );
  const ids = (found.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId!);
  const selector = tags.map(([key, value]) => `${key}=${value}`).join(', ');
  if (ids.length !== 1) {
    throw new InstanceNotFoundError(
      ids.length === 0
        ? `no running instance has the tags ${selector} of cluster ${target.name}; is the database host running?`
        : `${ids.length} running instances (${ids.join(', ')}) have the tags ${selector} of cluster ${target.name}; ` +
            'make the tags select exactly one, or configure its instanceId',
    );
  }
  return ids[0]!;
}

export async function planBackup(
  clients: { ec2: EC2Client },
  request: PlanRequest,
  catalog: Catalog,
): Promise<BackupPlan> {
  const input = parseExecutionInput(request.input);
  const startedAt = new Date(request.executionStartTime);
  const backupId = backupIdOfExecution({ name: request.executionName, startTime: startedAt });
  const target = await findCluster(clients.ec2, catalog, input.cluster);
  if (!target) {
    throw new InvalidInputError(
      `the backup request is not valid: cluster: ${input.cluster} is not configured here ` +
        `(${describeConfigured(catalog)})`,
    );
  }
  const plan = {
    backupId,
    cluster: target.name,
    label: input.label ?? (input.trigger === 'schedule' ? 'scheduled' : 'on-demand'),
    fast: input.fast ?? target.fastCheckpoint,
    trigger: input.trigger,
    volumeIds: target.volumeIds,
    maxBackupMinutes: target.maxBackupMinutes,
    repository: target.repository,
  };
  return { ...plan, instanceId: await findInstance(clients.ec2, target) };
}
