/** Lambda for "Snapshot the cluster's volumes". */
import { EC2Client } from '@aws-sdk/client-ec2';
import { sdkRetry } from '#domain/aws-retry';
import { beginProposalSchema, recordBegun } from '#domain/backup/proposal';
import { createSnapshotSet } from '#domain/ebs/create-snapshot-set';
import { hostVolumeSchema, type SnapshotSet } from '#domain/ebs/snapshots';
import { PreconditionError } from '#domain/errors';
import { backupIdSchema, clusterNameSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import { openRepository } from '#domain/repository/open';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const eventSchema = z.object({
  cluster: clusterNameSchema,
  backupId: backupIdSchema,
  instanceId: z.string(),
  /** The backup's repository: the call and its snapshot ids are recorded in the manifest (idempotency). */
  repository: z.optional(z.string()),
  /** From the configuration; when empty, the volumes that begin reported. */
  volumeIds: z.array(z.string()),
  begin: z.object({
    volumes: z.optional(z.array(hostVolumeSchema)),
    /** What `pgsnap begin --volumes` could not place on an EBS volume. */
    problems: z.optional(z.array(z.string())),
    /** Present in begin's answer: the backup it started, which this step records (proposal.ts). */
    startLsn: z.optional(z.string()),
  }),
});

/** The handler with its EC2 client given: AWS's in Lambda, the local volumes' in `pgsnap demo`. */
export const createSnapshotsHandler =
  (ec2: EC2Client) =>
  async (event: unknown): Promise<SnapshotSet> => {
    const { repository: url, ...request } = parseWith(eventSchema, event, 'the create-snapshots event');
    // Without configured volumeIds, the volumes the host found; a part it could not place makes the set incomplete.
    const problems = request.volumeIds.length > 0 ? [] : (request.begin.problems ?? []);
    if (problems.length > 0) {
      throw new PreconditionError(
        `the host cannot tell every EBS volume of ${request.cluster}: ${problems.join('; ')}`,
      );
    }
    const volumeIds =
      request.volumeIds.length > 0 ? request.volumeIds : (request.begin.volumes ?? []).map((v) => v.volumeId);
    const repository = url ? await openRepository(url, request.cluster) : undefined;
    try {
      // The host proposed what it started; the orchestrator records it (a host writes no manifest).
      if (repository && request.begin.startLsn !== undefined) {
        const answer = (event as { begin: unknown }).begin;
        const proposal = parseWith(beginProposalSchema, answer, "the host's answer to begin");
        await recordBegun(repository, request.backupId, proposal, request.instanceId);
      }
      return await createSnapshotSet(ec2, {
        ...request,
        volumeIds,
        ...(request.begin.volumes ? { hostVolumes: request.begin.volumes } : {}),
        ...(repository ? { repository } : {}),
      });
    } finally {
      repository?.close();
    }
  };

export const handler = logged('create-snapshots', createSnapshotsHandler(new EC2Client(sdkRetry)));
