/** The configuration's `discover` block: clusters found by their hosts' tags (domain/catalog.ts). */
import { z } from 'zod';
import { retentionSchema } from '../dr/dr-config.ts';
import { rpoHoursSchema, scheduleSchema } from './schedule.ts';

export const discoverSchema = z
  .strictObject({
    tag: z
      .string()
      .regex(/^[\w .:/=+@-]{1,128}$/)
      .default('pgsnap:cluster')
      .describe(
        "The tag whose value names the cluster an instance runs: a running instance tagged `<tag>=<name>` is cluster <name>'s host, found when a backup starts (no redeploy to add a host). A host may override the defaults with its tags `pgsnap:volumes` (volume ids separated by spaces), `pgsnap:fast-checkpoint` (true/false) and `pgsnap:max-backup-minutes`.",
      ),
    defaults: z
      .strictObject({
        prefix: z
          .string()
          .regex(/^([A-Za-z0-9._-]+\/)*$/, 'empty, or path segments each ending in /')
          .default('')
          .describe(
            "Where in the stack's bucket: a discovered cluster's objects are under `<prefix><cluster>/`.",
          ),
        schedules: z
          .array(scheduleSchema)
          .default([])
          .describe(
            'Fleet schedules: each start backs up every running tagged host not listed in `clusters`, one execution per cluster named after it and the scheduled time.',
          ),
        fastCheckpoint: z.boolean().default(false).describe('Request an immediate checkpoint.'),
        maxBackupMinutes: z
          .int()
          .min(1)
          .max(1440)
          .default(60)
          .describe('Past this the holder aborts the backup.'),
        recoveryHours: z
          .number()
          .positive()
          .max(46)
          .default(6)
          .describe("How long a restore's recovery may take on the target host."),
        rpoHours: rpoHoursSchema.describe(
          "The fleet's RPO alarm (ClustersOverRpo) counts a discovered cluster whose newest completed backup started more than this many hours ago, and ClustersWithoutBackup one with none: a tagged host that was never backed up is counted.",
        ),
        watchArchiving: z
          .boolean()
          .default(true)
          .describe(
            'Tagged hosts run the agent service (`pgsnap agent --cluster`): one that publishes no archive health is counted in ClustersWithoutArchiveHealth. Off when they run none.',
          ),
        retention: retentionSchema
          .optional()
          .describe(
            "Retention of every discovered cluster, as a listed cluster's `retention` (its `dr` policy is unused: discovered clusters are not copied to DR). It runs at the end of every backup and on its schedule, over every cluster directory under `prefix` that no listed cluster owns; none: their backups are kept until deleted by hand.",
          ),
      })
      .default({
        prefix: '',
        schedules: [],
        fastCheckpoint: false,
        maxBackupMinutes: 60,
        recoveryHours: 6,
        rpoHours: 26,
        watchArchiving: true,
      })
      .describe("The settings of every discovered cluster, unless its host's tags say otherwise."),
  })
  .describe('Clusters found by tags, beside (or instead of) those listed in `clusters`.');
export type DiscoverConfig = z.infer<typeof discoverSchema>;
