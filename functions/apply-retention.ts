/**
 * Lambda for "Apply retention" (at the end of every backup, and on the
 * cluster's retention schedule): the cluster's policy at the source, and its
 * DR policy in the DR repository with the DR account's EC2.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { STSClient } from '@aws-sdk/client-sts';
import { retentionPolicySchema } from '#domain/backup/retention';
import { drTargetVariable, openDrSession } from '#domain/ebs/dr-target';
import { applyEbsRetention, type RetentionSummary } from '#domain/ebs/retention';
import { jsonText, parseWith } from '#domain/parse';
import { openRepository } from '#domain/repository/open';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const ec2 = new EC2Client({});
const sts = new STSClient({});

const environmentSchema = z.object({
  /** The retention policy of each cluster that has one. */
  PGSNAP_RETENTION: jsonText(
    z.record(z.string(), z.extend(retentionPolicySchema, { dr: z.optional(retentionPolicySchema) })),
  ),
  PGSNAP_DR: z.optional(drTargetVariable),
});

const eventSchema = z.object({ cluster: z.string(), repository: z.string() });

export interface RetentionOutcome {
  source?: RetentionSummary;
  dr?: RetentionSummary;
}

async function handle(event: unknown): Promise<RetentionOutcome> {
  const env = parseWith(environmentSchema, process.env, 'the apply-retention environment');
  const request = parseWith(eventSchema, event, 'the apply-retention event');
  const clusterPolicy = env.PGSNAP_RETENTION[request.cluster];
  // A cluster without a policy keeps everything: nothing to do, and nothing went wrong.
  if (!clusterPolicy) return {};
  const { dr: drPolicy, ...sourcePolicy } = clusterPolicy;
  const outcome: RetentionOutcome = {};
  const repository = await openRepository(request.repository, request.cluster);
  try {
    outcome.source = await applyEbsRetention(repository, ec2, sourcePolicy);
  } finally {
    repository.close();
  }
  const target = env.PGSNAP_DR;
  if (target?.clusters[request.cluster]) {
    const session = await openDrSession(sts, target, { sessionName: `pgsnap-retention-${request.cluster}` });
    try {
      const dr = await session.openRepository(request.cluster);
      outcome.dr = await applyEbsRetention(dr, session.ec2, drPolicy ?? sourcePolicy);
    } finally {
      session.close();
    }
  }
  return outcome;
}

export const handler = logged('apply-retention', handle);
