/**
 * Lambda of the DR stack: records a backup's DR-side manifest from DR facts
 * (domain/ebs/record-dr-backup.ts). EventBridge calls it in the DR account and
 * Region when EBS ends a snapshot copy ("EBS Snapshot Notification",
 * copySnapshot); an operator may call it with `{cluster, backupId}` to record
 * again; a schedule calls it with `{sweep: true}` to record again what a lost
 * event left unrecorded. The source account writes no manifest in DR.
 */
import { DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { sdkRetry } from '#domain/aws-retry';
import { readCatalog } from '#domain/catalog';
import { type DrRecord, type DrSweep, recordDrBackup, sweepDrBackups } from '#domain/ebs/record-dr-backup';
import { snapshotTags } from '#domain/ebs/snapshots';
import { messageOf } from '#domain/errors';
import { backupIdSchema, clusterNameSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import { openRepository } from '#domain/repository/open';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const environmentSchema = z.object({
  /** The DR stack's catalog: the DR repository of each copied cluster (a fleet's passes Lambda's 4 KB). */
  PGSNAP_CATALOG: z.string(),
  /** The DR account, which owns the copies. */
  PGSNAP_DR_ACCOUNT: z.string().check(z.regex(/^\d{12}$/)),
  AWS_REGION: z.string(),
});

/**
 * What EBS sends when a copy ends (EBS user guide, "Amazon EventBridge for Amazon EBS": copySnapshot);
 * `snapshot_id` is the copy's ARN.
 */
const copyEndedSchema = z.object({
  'detail-type': z.literal('EBS Snapshot Notification'),
  detail: z.object({
    event: z.literal('copySnapshot'),
    snapshot_id: z.string().check(z.regex(/:snapshot\/snap-[0-9a-f]+$/)),
  }),
});
const recordAgainSchema = z.object({ cluster: clusterNameSchema, backupId: backupIdSchema });
const sweepSchema = z.object({ sweep: z.literal(true) });
const eventSchema = z.union([copyEndedSchema, recordAgainSchema, sweepSchema]);

/** How far back a sweep looks: past the longest a copy waits in the queue and runs (bench/fleet: hours). */
export const sweepLookBackHours = 48;

/** The handler with the DR account's EC2 client (and, for tests, the clock) given. */
export const recordDrBackupHandler =
  (ec2: EC2Client, now: () => Date = () => new Date()) =>
  async (event: unknown): Promise<DrRecord | { swept: Record<string, DrSweep> }> => {
    const env = parseWith(environmentSchema, process.env, 'the record-dr-backup environment');
    const request = parseWith(eventSchema, event, 'the record-dr-backup event');
    if ('sweep' in request) {
      // One cluster's repository out of reach does not keep the others unswept; the run fails after them.
      const swept: Record<string, DrSweep> = {};
      const failed: string[] = [];
      for (const { name: cluster, repository: url } of (await readCatalog()).clusters) {
        try {
          const repository = await openRepository(url, cluster);
          try {
            swept[cluster] = await sweepDrBackups(ec2, repository, {
              account: env.PGSNAP_DR_ACCOUNT,
              region: env.AWS_REGION,
              lookBackHours: sweepLookBackHours,
              now: now(),
            });
          } finally {
            repository.close();
          }
        } catch (error) {
          failed.push(`${cluster}: ${messageOf(error)}`);
        }
      }
      if (failed.length > 0) throw new Error(`the DR sweep could not read ${failed.join('; ')}`);
      return { swept };
    }
    const backup = 'detail' in request ? await backupOfCopy(ec2, request.detail.snapshot_id) : request;
    if ('reason' in backup) return { recorded: false, reason: backup.reason };
    const repositoryUrl = (await readCatalog()).clusters.find((c) => c.name === backup.cluster)?.repository;
    if (!repositoryUrl)
      return { recorded: false, reason: `${backup.cluster} is not a cluster this DR stack copies` };
    const repository = await openRepository(repositoryUrl, backup.cluster);
    try {
      return await recordDrBackup(ec2, repository, {
        backupId: backup.backupId,
        account: env.PGSNAP_DR_ACCOUNT,
        region: env.AWS_REGION,
      });
    } finally {
      repository.close();
    }
  };

/** The cluster and backup a copy's own tags name; a snapshot pgsnap did not copy is none of its business. */
async function backupOfCopy(
  ec2: EC2Client,
  arn: string,
): Promise<{ cluster: string; backupId: string } | { reason: string }> {
  const snapshotId = arn.slice(arn.lastIndexOf('/') + 1);
  const [snapshot] =
    (await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId], OwnerIds: ['self'] })))
      .Snapshots ?? [];
  const tag = (key: string) => snapshot?.Tags?.find((t) => t.Key === key)?.Value;
  const cluster = clusterNameSchema.safeParse(tag(snapshotTags.cluster));
  const backupId = backupIdSchema.safeParse(tag(snapshotTags.backupId));
  if (!cluster.success || !backupId.success)
    return { reason: `${snapshotId} is not a pgsnap copy (no ${snapshotTags.cluster} and backup tags)` };
  return { cluster: cluster.data, backupId: backupId.data };
}

export const handler = logged('record-dr-backup', recordDrBackupHandler(new EC2Client(sdkRetry)));
