/**
 * Lambda for "Apply retention": the cluster's policy over one repository and
 * the snapshots of the Lambda's own account and region. The source stack runs
 * it at the end of every backup and, through start-retention, on the
 * cluster's retention schedule, over the source repository; the DR stack runs
 * it in the DR account on the same cadence, over the DR repository and the DR
 * copies, with the DR policy. No principal of the source account deletes
 * anything in DR.
 *
 * The policy is the cluster's entry in the stack's cluster catalog
 * (`PGSNAP_CATALOG`; a discovered cluster: the discovery block's), not an
 * environment variable: a Lambda environment holds 4 KB, a catalog the fleet.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { sdkRetry } from '#domain/aws-retry';
import { retentionPolicyOf } from '#domain/backup/scheduled-retention';
import { readCatalog } from '#domain/catalog';
import { applyEbsRetention, type RetentionSummary } from '#domain/ebs/retention';
import { clusterNameSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import { openRepository } from '#domain/repository/open';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const eventSchema = z.object({ cluster: clusterNameSchema, repository: z.string() });

/** What retention did, or nothing for a cluster without a policy (it keeps everything). */
export type RetentionOutcome = RetentionSummary | Record<string, never>;

/** The handler with its EC2 client given: the Lambda's own account and region's. */
export const applyRetentionHandler =
  (ec2: EC2Client) =>
  async (event: unknown): Promise<RetentionOutcome> => {
    const request = parseWith(eventSchema, event, 'the apply-retention event');
    const policy = retentionPolicyOf(await readCatalog(), request.cluster);
    if (!policy) return {};
    const repository = await openRepository(request.repository, request.cluster);
    try {
      return await applyEbsRetention(repository, ec2, policy);
    } finally {
      repository.close();
    }
  };

export const handler = logged('apply-retention', applyRetentionHandler(new EC2Client(sdkRetry)));
