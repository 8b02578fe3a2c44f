/**
 * The cluster catalog: what the Lambdas know of the environment's clusters.
 * It is not carried in a Lambda environment (4 KB for every variable of a
 * function, about 20 clusters): the stack writes it at deploy as one JSON
 * object in the repository bucket, under a key named after its content, and
 * the Lambdas get only its URL (`PGSNAP_CATALOG`). A new catalog is a new key,
 * so a new function configuration: a container caches what it read for its
 * whole life. On one machine the catalog is a file (`file:///…` or a path),
 * read again on every call.
 *
 * A catalog may also say that clusters are found by tags (`discover`): an
 * instance tagged `pgsnap:cluster=<name>` is that cluster's host, with the
 * defaults block's settings and the settings its own tags give.
 */
import { readFileSync } from 'node:fs';
import { DescribeInstancesCommand, type EC2Client, type Instance } from '@aws-sdk/client-ec2';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { sdkRetry } from './aws-retry.ts';
import { InstanceNotFoundError, InvalidInputError } from './errors.ts';
import { clusterNamePattern, clusterNameSchema } from './ids.ts';
import { jsonText, parseWith } from './parse.ts';
import * as z from './zod.ts';

/** One configured cluster: where its host is, its settings, its repository. */
export const catalogClusterSchema = z.strictObject({
  name: clusterNameSchema,
  instanceId: z.optional(z.string()),
  instanceTags: z.optional(z.record(z.string(), z.string())),
  volumeIds: z._default(z.array(z.string()), []),
  fastCheckpoint: z.boolean(),
  maxBackupMinutes: z.int(),
  /** The repository URL the agent and the manifest steps use: `s3://bucket/prefix`. */
  repository: z.string(),
  /** How long a restore's recovery may take on the target host; none: the agent's default. */
  recoverySeconds: z.optional(z.int().check(z.positive())),
  /** The DR repository of a cluster copied to DR: `s3://<dr bucket>/<prefix>?region=<dr region>`. */
  drRepository: z.optional(z.string()),
  /**
   * Its retention policy on this side (the source's in the source catalog, the DR one in the DR stack's) and
   * the cadence of its scheduled retention; its own schema reads it (domain/backup/scheduled-retention.ts).
   */
  retention: z.optional(z.record(z.string(), z.unknown())),
});
export type CatalogCluster = z.output<typeof catalogClusterSchema>;

/** Tags a discovered cluster's host may carry to differ from the defaults block. */
export const discoveryTags = {
  /** The volumes that hold the cluster, separated by spaces: `vol-0a… vol-0b…`. */
  volumes: 'pgsnap:volumes',
  /** `true` or `false`: an immediate checkpoint at begin. */
  fastCheckpoint: 'pgsnap:fast-checkpoint',
  /** Whole minutes: past this the holder aborts the backup. */
  maxBackupMinutes: 'pgsnap:max-backup-minutes',
} as const;

export const catalogDiscoverySchema = z.strictObject({
  /** The tag whose value names the cluster an instance runs (`pgsnap:cluster`). */
  tag: z.string().check(z.minLength(1)),
  /** The repository of every discovered cluster: `s3://bucket/prefix`. */
  repository: z.string(),
  defaults: z.strictObject({
    fastCheckpoint: z.boolean(),
    maxBackupMinutes: z.int(),
    recoverySeconds: z.optional(z.int().check(z.positive())),
    /** The retention of every discovered cluster, as a listed cluster's `retention`. */
    retention: z.optional(z.record(z.string(), z.unknown())),
  }),
});
export type CatalogDiscovery = z.output<typeof catalogDiscoverySchema>;

export const catalogSchema = z.strictObject({
  schemaVersion: z.literal(1),
  clusters: z.array(catalogClusterSchema),
  discover: z.optional(catalogDiscoverySchema),
  /**
   * What report-backup-age checks of each cluster (`{ defaults, clusters }`); its own schema reads it
   * (functions/report-backup-age.ts).
   */
  freshness: z.optional(z.record(z.string(), z.unknown())),
});
export type Catalog = z.output<typeof catalogSchema>;
export type CatalogInput = z.input<typeof catalogSchema>;

export const catalogEnvironmentSchema = z.object({
  PGSNAP_CATALOG: z.string().check(z.minLength(1)),
});

const cached = new Map<string, Promise<Catalog>>();

async function fetchCatalog(url: string): Promise<Catalog> {
  // A file (the local harness and the benches) is read at once: a read in flight is invisible to bench/fleet's
  // virtual clock, which would otherwise run the Lambda's timeout out before the file arrives.
  const text = url.startsWith('s3://') ? await getS3Text(url) : readFileSync(fileOf(url), 'utf8');
  return parseWith(jsonText(catalogSchema), text, `the cluster catalog ${url}`);
}

function fileOf(url: string): string {
  return url.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url;
}

async function getS3Text(url: string): Promise<string> {
  const [, bucket, key] = /^s3:\/\/([^/]+)\/(.+)$/.exec(url) ?? [];
  if (!bucket || !key) throw new InvalidInputError(`the cluster catalog ${url} is not s3://bucket/key`);
  const answer = await new S3Client(sdkRetry).send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return (await answer.Body?.transformToString('utf8')) ?? '';
}

/**
 * The catalog `PGSNAP_CATALOG` names. An S3 catalog's key is named after its content and never rewritten,
 * so it is read once per container; a file is read on every call (the local harness rewrites it).
 */
export function readCatalog(environment: NodeJS.ProcessEnv = process.env): Promise<Catalog> {
  const { PGSNAP_CATALOG: url } = parseWith(catalogEnvironmentSchema, environment, 'the Lambda environment');
  if (!url.startsWith('s3://')) return fetchCatalog(url);
  let catalog = cached.get(url);
  if (!catalog) {
    catalog = fetchCatalog(url);
    cached.set(url, catalog);
    catalog.catch(() => cached.delete(url));
  }
  return catalog;
}

/** Names for a message: a fleet's catalog can hold hundreds. */
export function describeConfigured(catalog: Catalog): string {
  const names = catalog.clusters.map((c) => c.name);
  const shown =
    names.length > 10 ? `${names.slice(0, 10).join(', ')} and ${names.length - 10} more` : names.join(', ');
  const discovered = catalog.discover ? `; any instance tagged ${catalog.discover.tag}=<cluster>` : '';
  return `configured: ${shown || 'none'}${discovered}`;
}

/** The running instances tagged as `name`'s host (one filtered call; never an unfiltered describe). */
export async function taggedHosts(ec2: EC2Client, tag: string, name: string): Promise<Instance[]> {
  const found = await ec2.send(
    new DescribeInstancesCommand({
      Filters: [
        { Name: `tag:${tag}`, Values: [name] },
        { Name: 'instance-state-name', Values: ['running'] },
      ],
    }),
  );
  return (found.Reservations ?? []).flatMap((r) => r.Instances ?? []);
}

function tagOf(instance: Instance, key: string): string | undefined {
  return instance.Tags?.find((t) => t.Key === key)?.Value;
}

/** The settings of a discovered cluster: the defaults block, then what its host's tags say. */
export function discoveredCluster(discovery: CatalogDiscovery, name: string, host: Instance): CatalogCluster {
  const volumes = tagOf(host, discoveryTags.volumes);
  const fast = tagOf(host, discoveryTags.fastCheckpoint);
  const minutes = tagOf(host, discoveryTags.maxBackupMinutes);
  const volumeIds = volumes?.split(/\s+/).filter(Boolean) ?? [];
  const bad = volumeIds.find((id) => !/^vol-[0-9a-f]{8,17}$/.test(id));
  if (bad) {
    throw new InvalidInputError(
      `instance ${host.InstanceId} of cluster ${name}: its ${discoveryTags.volumes} tag holds ${JSON.stringify(bad)}, ` +
        'not a volume id; give EBS volume ids separated by spaces, or remove the tag to use the volumes begin reports',
    );
  }
  if (fast !== undefined && fast !== 'true' && fast !== 'false') {
    throw new InvalidInputError(
      `instance ${host.InstanceId} of cluster ${name}: its ${discoveryTags.fastCheckpoint} tag is ${JSON.stringify(fast)}; use true or false`,
    );
  }
  if (minutes !== undefined && !/^[1-9]\d{0,3}$/.test(minutes)) {
    throw new InvalidInputError(
      `instance ${host.InstanceId} of cluster ${name}: its ${discoveryTags.maxBackupMinutes} tag is ${JSON.stringify(minutes)}; use whole minutes (1–1440)`,
    );
  }
  return {
    name,
    instanceId: host.InstanceId!,
    volumeIds,
    fastCheckpoint: fast === undefined ? discovery.defaults.fastCheckpoint : fast === 'true',
    maxBackupMinutes:
      minutes === undefined ? discovery.defaults.maxBackupMinutes : Math.min(Number(minutes), 1440),
    repository: discovery.repository,
    ...(discovery.defaults.recoverySeconds ? { recoverySeconds: discovery.defaults.recoverySeconds } : {}),
  };
}

/**
 * The cluster `name` as the catalog knows it, or, when the catalog discovers clusters by tag, as the one
 * running instance tagged with its name makes it. Undefined when neither knows it.
 */
export async function findCluster(
  ec2: EC2Client,
  catalog: Catalog,
  name: string,
): Promise<CatalogCluster | undefined> {
  const listed = catalog.clusters.find((c) => c.name === name);
  if (listed || !catalog.discover || !clusterNamePattern.test(name)) return listed;
  const hosts = await taggedHosts(ec2, catalog.discover.tag, name);
  if (hosts.length === 0) return undefined;
  if (hosts.length > 1) {
    throw new InstanceNotFoundError(
      `${hosts.length} running instances (${hosts.map((h) => h.InstanceId).join(', ')}) are tagged ` +
        `${catalog.discover.tag}=${name}; a cluster has one database host: tag only that one`,
    );
  }
  return discoveredCluster(catalog.discover, name, hosts[0]!);
}

/** The repository of `name` for a restore: a restore reads the repository, and needs no running host. */
export function restoreClusterOf(
  catalog: Catalog,
  name: string,
): { name: string; repository: string; recoverySeconds?: number } | undefined {
  const listed = catalog.clusters.find((c) => c.name === name);
  if (listed) return listed;
  if (!catalog.discover || !clusterNamePattern.test(name)) return undefined;
  return {
    name,
    repository: catalog.discover.repository,
    ...(catalog.discover.defaults.recoverySeconds
      ? { recoverySeconds: catalog.discover.defaults.recoverySeconds }
      : {}),
  };
}
