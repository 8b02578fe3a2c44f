/**
 * A fleet schedule's start. A schedule shared by listed clusters names them
 * (`clusters`), and each gets one backup execution. Otherwise every running instance tagged with the
 * catalog's discovery tag is a cluster's host, and each such cluster not
 * listed in the catalog (a listed one has its own schedules) gets one backup
 * execution named after it and the scheduled time (startScheduledBackup), so
 * a second delivery of the schedule starts nothing twice. The hosts are found
 * by one filtered, paginated DescribeInstances, never an unfiltered one.
 */
import { type EC2Client, paginateDescribeInstances } from '@aws-sdk/client-ec2';
import type { SFNClient } from '@aws-sdk/client-sfn';
import type { Catalog } from '../catalog.ts';
import { messageOf } from '../errors.ts';
import { clusterNamePattern } from '../ids.ts';
import { parseWith } from '../parse.ts';
import * as z from '../zod.ts';
import { startScheduledBackup } from './execution.ts';

/** What a fleet schedule passes: its label and Scheduler's `<aws.scheduler.scheduled-time>`. */
export const fleetStartSchema = z.strictObject({
  label: z.optional(z.string()),
  scheduledTime: z.iso.datetime({ offset: true }),
  /**
   * Listed clusters that share this cadence (infra/backup/schedules.ts groups them): one schedule starts each
   * of them, and no instance is looked up. None: the clusters found by the discovery tag.
   */
  clusters: z.optional(z.array(z.string().check(z.regex(clusterNamePattern))).check(z.minLength(1))),
});

export interface FleetStart {
  /** The clusters whose execution this delivery started. */
  started: string[];
  /** The clusters whose execution an earlier delivery started. */
  alreadyStarted: string[];
  /** Tag values that are no valid cluster name, with their instance. */
  skipped: Array<{ instanceId: string; value: string }>;
}

/**
 * Some of a fleet schedule's backups did not start (the others did, and are not started twice).
 *
 * What to do: Nothing at once: the schedule's retry starts the missing ones. If it keeps failing, read the
 * start-fleet Lambda's log for each cluster's reason.
 */
export class FleetStartError extends Error {
  override name = 'FleetStartError';
}

/** The clusters the discovery tag names on running instances, by name, each with its instances. */
export async function taggedClusters(ec2: EC2Client, tag: string): Promise<Map<string, string[]>> {
  const clusters = new Map<string, string[]>();
  const pages = paginateDescribeInstances(
    { client: ec2, pageSize: 1000 },
    {
      Filters: [
        { Name: 'tag-key', Values: [tag] },
        { Name: 'instance-state-name', Values: ['running'] },
      ],
    },
  );
  for await (const page of pages) {
    for (const instance of (page.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
      const value = instance.Tags?.find((t) => t.Key === tag)?.Value ?? '';
      clusters.set(value, [...(clusters.get(value) ?? []), instance.InstanceId ?? '']);
    }
  }
  return clusters;
}

/** The clusters the discovery tag names that the catalog does not list (a listed one has its own schedules). */
async function discoveredClusters(ec2: EC2Client, catalog: Catalog, result: FleetStart): Promise<string[]> {
  if (!catalog.discover) return [];
  const listed = new Set(catalog.clusters.map((c) => c.name));
  const names: string[] = [];
  for (const [name, instances] of await taggedClusters(ec2, catalog.discover.tag)) {
    if (!clusterNamePattern.test(name)) {
      for (const instanceId of instances) result.skipped.push({ instanceId, value: name });
    } else if (!listed.has(name)) {
      names.push(name);
    }
  }
  return names;
}

export async function startFleetBackups(
  clients: { ec2: EC2Client; sfn: SFNClient },
  request: { stateMachineArn: string; catalog: Catalog | (() => Promise<Catalog>); event: unknown },
): Promise<FleetStart> {
  const { label, scheduledTime, clusters } = parseWith(fleetStartSchema, request.event, 'the fleet start');
  const result: FleetStart = { started: [], alreadyStarted: [], skipped: [] };
  const catalog = async () => (typeof request.catalog === 'function' ? request.catalog() : request.catalog);
  const names = clusters ?? (await discoveredClusters(clients.ec2, await catalog(), result));
  const failures: string[] = [];
  for (const name of names) {
    try {
      const event = { cluster: name, trigger: 'schedule', scheduledTime, ...(label ? { label } : {}) };
      const started = await startScheduledBackup(clients.sfn, {
        stateMachineArn: request.stateMachineArn,
        event,
      });
      (started.alreadyStarted ? result.alreadyStarted : result.started).push(name);
    } catch (error) {
      failures.push(`${name}: ${messageOf(error)}`);
    }
  }
  if (failures.length > 0) {
    throw new FleetStartError(
      `${failures.length} of the fleet's backups did not start (${failures.slice(0, 5).join('; ')}` +
        `${failures.length > 5 ? '; …' : ''}); the schedule's retry starts them, and the others are not started twice`,
    );
  }
  return result;
}
