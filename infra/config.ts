/**
 * The one configuration that drives the CDK app: environments (one stack
 * each) and the clusters they back up. Validated once, here; every construct
 * receives the parsed, defaulted result.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { validateClusterName, validateLabel } from '#domain/backup/input';
import { drSchema, retentionSchema } from './dr-config.ts';

/** Turns one of the agent's validators into a zod check, so a value is judged the same on both sides. */
function checkedBy(validate: (value: string) => string) {
  return z.string().superRefine((value, ctx) => {
    try {
      validate(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
    }
  });
}

const instanceId = z.string().regex(/^i-[0-9a-f]{8,17}$/, 'an EC2 instance id, e.g. i-0123456789abcdef0');
const volumeId = z.string().regex(/^vol-[0-9a-f]{8,17}$/, 'an EBS volume id, e.g. vol-0123456789abcdef0');
const tagValue = z.string().regex(/^[\w .:/=+@-]{1,256}$/, 'a tag value without quotes or wildcards');

export const scheduleSchema = z.strictObject({
  /** Names the schedule; unique within the cluster. */
  name: z.string().regex(/^[a-z0-9-]{1,32}$/, 'lower-case letters, digits and -'),
  /** EventBridge Scheduler expression: `cron(0 3 * * ? *)` or `rate(6 hours)`. */
  expression: z.string().regex(/^(cron|rate)\(.+\)$/, 'cron(...) or rate(...)'),
  timezone: z.string().default('UTC'),
  label: checkedBy(validateLabel).default('scheduled'),
});

export const clusterSchema = z.strictObject({
  name: checkedBy(validateClusterName),
  /** The database host: an instance id, or tags that select exactly one running instance. */
  instance: z.union([
    z.strictObject({ instanceId }),
    z.strictObject({
      tags: z
        .record(z.string().regex(/^[\w .:/=+@-]{1,128}$/), tagValue)
        .refine((tags) => Object.keys(tags).length > 0, 'give at least one tag'),
    }),
  ]),
  /**
   * The volumes that hold PGDATA, tablespaces and pg_wal. When absent, the
   * volumes that `pgsnap begin` reports (from `pgsnap discover`) are used.
   */
  volumeIds: z.array(volumeId).min(1).optional(),
  /** Where WAL and artifacts go: the stack's own bucket unless `bucketName` names an existing one. */
  repository: z
    .strictObject({
      bucketName: z
        .string()
        .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/)
        .optional(),
      prefix: z
        .string()
        .regex(/^([A-Za-z0-9._-]+\/)*$/, 'empty, or path segments each ending in /')
        .default(''),
    })
    .default({ prefix: '' }),
  schedules: z.array(scheduleSchema).default([]),
  /** Request an immediate checkpoint instead of a spread one. */
  fastCheckpoint: z.boolean().default(false),
  /** Past this the holder aborts the backup, whatever else happens. */
  maxBackupMinutes: z.int().min(1).max(1440).default(60),
  /** The RPO alarm fires when no backup of this cluster completed within this many hours. */
  rpoHours: z.int().min(1).max(168).default(26),
  /** Retention at the source and in DR (infra/dr-config.ts); none: backups are kept until deleted by hand. */
  retention: retentionSchema.optional(),
  /** Copy this cluster's backups to the environment's DR account/region, when it has one. */
  copyToDr: z.boolean().default(true),
});

/** The shortest heartbeatSeconds accepted (see its message). */
export const minHeartbeatSeconds = 60;

export const environmentSchema = z.strictObject({
  /** Names the stack: `pgsnap-<name>`. */
  name: z.string().regex(/^[a-z][a-z0-9-]{0,30}$/),
  account: z
    .string()
    .regex(/^\d{12}$/)
    .optional(),
  region: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-\d$/)
    .optional(),
  clusters: z.array(clusterSchema).min(1),
  notifications: z
    .strictObject({
      /** Subscribed to alarms and failure events. */
      emails: z.array(z.email()).default([]),
      /** Also announce completed backups on the topic, not only failures. */
      onSuccess: z.boolean().default(false),
    })
    .default({ emails: [], onSuccess: false }),
  timeouts: z
    .strictObject({
      /** How long `begin` and `end` may run on the host (a spread checkpoint, the archive wait). */
      hostCommandSeconds: z.int().min(1).default(1800),
      /**
       * Silence this long from the host means it is gone. The agent heartbeats three times within it;
       * less than hostCommandSeconds (and than 300 s, the abort's timeout, for the abort to heartbeat).
       */
      heartbeatSeconds: z
        .int()
        .min(
          minHeartbeatSeconds,
          `at least ${minHeartbeatSeconds}: the clock starts when the state machine sends the command, and the ` +
            'first heartbeat comes only once SSM has delivered it to the host and pgsnap has started (seconds, at ' +
            'times tens of seconds), then every third of heartbeatSeconds',
        )
        .default(300),
      /** Waits between snapshot polls start here and double up to `maxPollSeconds`. */
      firstPollSeconds: z.int().min(1).default(15),
      maxPollSeconds: z.int().min(1).default(300),
      /** Snapshots not completed after this many hours fail the backup. */
      snapshotHours: z.int().min(1).max(72).default(24),
    })
    .default({
      hostCommandSeconds: 1800,
      heartbeatSeconds: 300,
      firstPollSeconds: 15,
      maxPollSeconds: 300,
      snapshotHours: 24,
    }),
  /** Disaster-recovery copies to another region and/or account (infra/dr-config.ts). */
  dr: drSchema.optional(),
});

export const configSchema = z.strictObject({
  environments: z.array(environmentSchema).min(1),
});

export type Config = z.infer<typeof configSchema>;
export type EnvironmentConfig = z.infer<typeof environmentSchema>;
export type ClusterConfig = z.infer<typeof clusterSchema>;
/** What the config file may leave out (defaults filled in by parsing). */
export type EnvironmentInput = z.input<typeof environmentSchema>;

/** Parses a configuration, naming every wrong field with its path. */
export function parseConfig(value: unknown, source = 'the pgsnap configuration'): Config {
  const result = configSchema.safeParse(value);
  if (!result.success) {
    const problems = result.error.issues.map(
      (issue) => `  - ${issue.path.join('.') || '(top)'}: ${issue.message}`,
    );
    throw new Error(`${source} is not valid:\n${problems.join('\n')}`);
  }
  for (const environment of result.data.environments) {
    const names = environment.clusters.map((cluster) => cluster.name);
    const repeated = names.find((name, index) => names.indexOf(name) !== index);
    if (repeated) throw new Error(`${source}: cluster ${repeated} appears twice in ${environment.name}`);
  }
  return result.data;
}

export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(
      `cannot read the pgsnap configuration ${path} (${(error as Error).message}); ` +
        'copy pgsnap.config.json and point cdk.json context "pgsnap:config" at it',
    );
  }
  return parseConfig(JSON.parse(text), path);
}
