/**
 * The one configuration that drives the CDK app: environments (one stack
 * each) and the clusters they back up. Validated once, here; every construct
 * receives the parsed, defaulted result.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { validateClusterName } from '#domain/ids';
import { drSchema, retentionSchema } from '../dr/dr-config.ts';
import { discoverSchema } from './discover.ts';
import { checkedBy, rpoHoursSchema, scheduleSchema } from './schedule.ts';

export { scheduleSchema };

const instanceId = z.string().regex(/^i-[0-9a-f]{8,17}$/, 'an EC2 instance id, e.g. i-0123456789abcdef0');
const volumeId = z.string().regex(/^vol-[0-9a-f]{8,17}$/, 'an EBS volume id, e.g. vol-0123456789abcdef0');
const tagValue = z.string().regex(/^[\w .:/=+@-]{1,256}$/, 'a tag value without quotes or wildcards');

export const drillSchema = z.strictObject({
  schedule: z
    .string()
    .regex(/^(cron|rate)\(.+\)$/, 'cron(...) or rate(...)')
    .describe('When to drill: an EventBridge Scheduler expression, e.g. `cron(0 6 ? * SUN *)`.'),
  timezone: z.string().default('UTC').describe('IANA time zone the expression is read in.'),
  flexibleWindowMinutes: z
    .number()
    .int()
    .min(1)
    .max(1440)
    .default(1440)
    .describe(
      "Scheduler's flexible time window of the drill: it starts at a random moment up to this many minutes after the scheduled time (default a day, Scheduler's longest), spreading a fleet's drills.",
    ),

  launch: z
    .strictObject({
      launchTemplate: z
        .string()
        .regex(/^[A-Za-z0-9()./_-]{3,128}$/)
        .optional()
        .describe(
          "The drill instance's launch template (id or name); its instance profile's role must be named pgsnap-*. None: the kit's.",
        ),
      version: z
        .string()
        .regex(/^(\$Latest|\$Default|[0-9]{1,10})$/)
        .optional()
        .describe('The template version; default `$Default`.'),
      subnetId: z
        .string()
        .regex(/^subnet-[0-9a-f]{8,17}$/)
        .describe('Where the drill instance runs.'),
    })
    .describe('The instance each drill launches, and terminates when done.'),
  kit: z
    .strictObject({
      imageId: z
        .string()
        .regex(/^(ami-[0-9a-f]{8,17}|resolve:ssm:[A-Za-z0-9_./:-]{1,1000})$/)
        .describe(
          'The drill AMI (`ami-…` or `resolve:ssm:/parameter`): PostgreSQL of the source major, the agent, the SSM agent.',
        ),
      vpcId: z
        .string()
        .regex(/^vpc-[0-9a-f]{8,17}$/)
        .describe("The VPC of the drill subnet (the security group's)."),
      instanceType: z
        .string()
        .regex(/^[a-z0-9]+\.[a-z0-9]+$/)
        .default('m6i.large')
        .describe('The instance type.'),
    })
    .optional()
    .describe(
      'Make the drill host kit: an instance profile (read-only restore policy and AmazonSSMManagedInstanceCore), a security group (HTTPS out only) and a launch template (IMDSv2, no public address) named pgsnap-<environment>-drill-<cluster>, used when launch names no template.',
    ),
  checks: z
    .strictObject({
      amcheck: z.union([z.enum(['none', 'all']), z.strictObject({ database: z.string() })]).default('all'),
      sql: z
        .strictObject({
          database: z.string().default('postgres'),
          query: z.string().min(1).max(4000),
          expect: z.string().default('t'),
        })
        .optional(),
    })
    .default({ amcheck: 'all' })
    .describe(
      "What the restored cluster is checked for: pg_amcheck's scope and an SQL check with its expected answer.",
    ),
  days: z
    .int()
    .min(1)
    .max(90)
    .default(8)
    .describe(
      "The fleet's ClustersWithoutRecentDrill alarm counts the cluster when no drill succeeded in this many days (report-backup-age reads the restore records; give a weekly drill a day of slack).",
    ),
  initializationRate: z
    .int()
    .min(100)
    .max(300)
    .optional()
    .describe(
      "The drill's volumes initialize at this provisioned rate, MiB/s (CreateVolume VolumeInitializationRate; billed per GiB): pg_amcheck reads every block, which at EBS's default rate comes from S3 on first read.",
    ),
  fullSpeedMinutes: z
    .number()
    .positive()
    .max(10_080)
    .optional()
    .describe(
      'Instead of a rate: the slowest provisioned rate that initializes the largest volume within this many minutes; a drill whose objective 300 MiB/s cannot meet is refused, and alarms.',
    ),
  rtoMinutes: z
    .number()
    .positive()
    .max(1440)
    .optional()
    .describe(
      'The recovery time objective: an alarm fires when a drill took longer, from its request to the restored server accepting connections.',
    ),
});
export type DrillConfig = z.infer<typeof drillSchema>;
export type ScheduleConfig = z.infer<typeof scheduleSchema>;
export type { DiscoverConfig } from './discover.ts';

/** A drill names a launch template or has the kit make one. */
export function drillTemplateProblem(drills: DrillConfig): string | undefined {
  if (!drills.launch.launchTemplate && !drills.kit)
    return 'give drills.launch.launchTemplate, or drills.kit to make one';
  if (drills.launch.launchTemplate && drills.kit)
    return 'give drills.launch.launchTemplate or drills.kit, not both';
  return undefined;
}

export const clusterSchema = z.strictObject({
  name: checkedBy(validateClusterName).describe(
    "The cluster's name (`orders-db`): the repository prefix, tags and metric dimension.",
  ),
  instance: z
    .union([
      z.strictObject({ instanceId: instanceId.describe('The instance that runs the cluster.') }),
      z.strictObject({
        tags: z
          .record(z.string().regex(/^[\w .:/=+@-]{1,128}$/), tagValue)
          .refine((tags) => Object.keys(tags).length > 0, 'give at least one tag')
          .describe('Tags that select exactly one running instance.'),
      }),
    ])
    .describe('The database host: an instance id, or tags that select exactly one running instance.'),
  volumeIds: z
    .array(volumeId)
    .min(1)
    .optional()
    .describe(
      'The volumes that hold PGDATA, tablespaces and pg_wal. When absent, the volumes that `pgsnap begin` reports (from `pgsnap discover`) are used.',
    ),
  repository: z
    .strictObject({
      bucketName: z
        .string()
        .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/)
        .optional()
        .describe("An existing bucket to use instead of the stack's own."),
      prefix: z
        .string()
        .regex(/^([A-Za-z0-9._-]+\/)*$/, 'empty, or path segments each ending in /')
        .default('')
        .describe("Where in the bucket: the cluster's objects are under `<prefix><cluster>/`."),
    })
    .default({ prefix: '' })
    .describe(
      "Where WAL and artifacts go: the stack's own bucket unless `bucketName` names an existing one.",
    ),
  schedules: z
    .array(scheduleSchema)
    .default([])
    .describe('EventBridge Scheduler schedules that start backups.'),
  fastCheckpoint: z
    .boolean()
    .default(false)
    .describe('Request an immediate checkpoint instead of a spread one.'),
  maxBackupMinutes: z
    .int()
    .min(1)
    .max(1440)
    .default(60)
    .describe('Past this the holder aborts the backup, whatever else happens.'),
  rpoHours: rpoHoursSchema.describe(
    "The fleet's RPO alarm (ClustersOverRpo) counts this cluster when its newest completed backup started more than this many hours ago, or it has none.",
  ),
  walRpoMinutes: z
    .int()
    .min(1)
    .max(1440)
    .default(15)
    .describe(
      'The "archiving stalled" alarm fires when WAL has waited this long to be archived (the agent\'s `ArchiveLagSeconds`): what a restore would lose.',
    ),
  walMinFreeMiB: z
    .int()
    .min(1)
    .default(2048)
    .describe(
      'The "pg_wal filling" alarm fires when the file system of pg_wal has less than this free (the agent\'s `WalVolumeFreeBytes`).',
    ),
  watchArchiving: z
    .boolean()
    .default(true)
    .describe(
      'Alarm on the archive health that `pgsnap agent --cluster` publishes from the host (archiving stalled, pg_wal filling; a host that publishes none is counted in ClustersWithoutArchiveHealth). Off for a host that runs no agent service.',
    ),
  retention: retentionSchema
    .optional()
    .describe(
      'Retention at the source and in DR (infra/dr/dr-config.ts); none: backups are kept until deleted by hand.',
    ),
  copyToDr: z
    .boolean()
    .default(true)
    .describe("Copy this cluster's backups to the environment's DR account/region, when it has one."),
  recoveryHours: z
    .number()
    .positive()
    .max(46)
    .default(6)
    .describe(
      "How long a restore's recovery may take on the target host (passed as the agent's `--recovery-timeout`); the state machine's host step allows this plus pg_amcheck's time for the backup's size (domain/restore/host-time.ts).",
    ),
  drills: drillSchema
    .optional()
    .describe(
      'Scheduled restore drills of the latest backup, on an instance launched for each; none: no drills.',
    ),
});

/** The shortest heartbeatSeconds accepted (see its message). */
export const minHeartbeatSeconds = 60;

export const environmentSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,30}$/)
    .describe('Names the stack: `pgsnap-<name>`.'),
  account: z
    .string()
    .regex(/^\d{12}$/)
    .optional()
    .describe('The AWS account the stack deploys to (needed for DR copies).'),
  region: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-\d$/)
    .optional()
    .describe('The AWS region the stack deploys to.'),
  clusters: z
    .array(clusterSchema)
    .describe(
      'The clusters this environment backs up, by name: at least one, unless `discover` finds them by tags (then `[]` will do).',
    ),
  discover: discoverSchema.optional(),
  notifications: z
    .strictObject({
      emails: z.array(z.email()).default([]).describe('Subscribed to alarms and failure events.'),
      onSuccess: z
        .boolean()
        .default(false)
        .describe('Also announce completed backups on the topic, not only failures.'),
    })
    .default({ emails: [], onSuccess: false })
    .describe('Who hears of alarms and failures.'),
  timeouts: z
    .strictObject({
      hostCommandSeconds: z
        .int()
        .min(1)
        .default(1800)
        .describe('How long `begin` and `end` may run on the host (a spread checkpoint, the archive wait).'),
      heartbeatSeconds: z
        .int()
        .min(
          minHeartbeatSeconds,
          `at least ${minHeartbeatSeconds}: the clock starts when the state machine sends the command, and the ` +
            'first heartbeat comes only once SSM has delivered it to the host and pgsnap has started (seconds, at ' +
            'times tens of seconds), then every third of heartbeatSeconds',
        )
        .default(300)
        .describe(
          "Silence this long from the host means it is gone. The agent heartbeats three times within it; less than hostCommandSeconds (and than 300 s, the abort's timeout, for the abort to heartbeat).",
        ),
      firstPollSeconds: z
        .int()
        .min(1)
        .default(30)
        .describe(
          "The shortest wait between snapshot (and DR copy) polls; each wait is the time EBS's Progress predicts is left, at least this.",
        ),
      maxPollSeconds: z
        .int()
        .min(1)
        .default(1800)
        .describe(
          "The longest wait between snapshot (and DR copy) polls, however long EBS's Progress predicts (a wait is also never longer than the snapshots have run so far).",
        ),
      snapshotHours: z
        .int()
        .min(1)
        .max(72)
        .default(24)
        .describe('Snapshots not completed after this many hours fail the backup.'),
    })
    .default({
      hostCommandSeconds: 1800,
      heartbeatSeconds: 300,
      firstPollSeconds: 30,
      maxPollSeconds: 1800,
      snapshotHours: 24,
    }),
  dr: drSchema
    .extend({
      drills: drillSchema
        .optional()
        .describe(
          "Scheduled restore drills in the DR region, from the DR copies, of every copied cluster: as a cluster's drills, with the DR region's subnet and AMI (the DR stack's kit is pgsnap-<environment>-dr-drill-<cluster>).",
        ),
    })
    .optional()
    .describe('Disaster-recovery copies to another region and/or account (infra/dr/dr-config.ts).'),
  budgets: z
    .strictObject({
      pendingSnapshots: z
        .int()
        .min(1)
        .max(100)
        .default(90)
        .describe(
          "Pending EBS snapshots this environment's backups may hold at once, of the account's 100 per Region (not adjustable); a backup waits for its share before `begin`. Environments sharing an account split the 100.",
        ),
      unlistedVolumes: z
        .int()
        .min(1)
        .max(40)
        .default(3)
        .describe('The share a backup takes when its cluster lists no `volumeIds`.'),
      copies: z
        .int()
        .min(1)
        .max(20)
        .default(20)
        .describe(
          'Concurrent DR snapshot copies, of the 20 per destination Region (not adjustable); oldest backup first.',
        ),
    })
    .default({ pendingSnapshots: 90, unlistedVolumes: 3, copies: 20 })
    .describe("AWS's account quotas held as budgets (a DynamoDB semaphore the stack creates)."),
});

export const configSchema = z.strictObject({
  environments: z.array(environmentSchema).min(1).describe('One stack each.'),
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
    if (environment.clusters.length === 0 && !environment.discover) {
      throw new Error(
        `${source}: ${environment.name} lists no clusters; list some, or find them by tags (discover)`,
      );
    }
    const names = environment.clusters.map((cluster) => cluster.name);
    const repeated = names.find((name, index) => names.indexOf(name) !== index);
    if (repeated) throw new Error(`${source}: cluster ${repeated} appears twice in ${environment.name}`);
    for (const cluster of environment.clusters) {
      const problem = cluster.drills && drillTemplateProblem(cluster.drills);
      if (problem) throw new Error(`${source}: ${environment.name}.${cluster.name}.drills: ${problem}`);
    }
    const drDrills = environment.dr?.drills;
    const problem = drDrills && drillTemplateProblem(drDrills);
    if (problem) throw new Error(`${source}: ${environment.name}.dr.drills: ${problem}`);
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
