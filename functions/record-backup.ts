/**
 * Lambda for the manifest steps: snapshots recorded, backup completed (with the host's proposed stop,
 * checked and recorded first), backup failed. The orchestrator records; the host only proposes.
 */

import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { sdkRetry } from '#domain/aws-retry';
import { publishBackupDurations } from '#domain/backup/durations';
import { type LifecycleState, recordStep } from '#domain/backup/lifecycle';
import { endProposalSchema, recordStopped } from '#domain/backup/proposal';
import { snapshotListSchema } from '#domain/ebs/snapshots';
import { backupIdSchema, clusterNameSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import type { Manifest, ManifestSnapshot } from '#domain/repository/manifest';
import { openRepository } from '#domain/repository/open';
import * as z from '#domain/zod';
import { logged, logger } from './commons/logged.ts';

const target = { cluster: clusterNameSchema, backupId: backupIdSchema, repository: z.string() };

const eventSchema = z.discriminatedUnion('state', [
  z.object({ ...target, state: z.literal('snapshotting'), snapshots: snapshotListSchema }),
  z.object({
    ...target,
    state: z.literal('completed'),
    snapshots: snapshotListSchema,
    /** When CreateSnapshots returned: the snapshots' completion time is counted from it. */
    snapshotsCreatedAt: z.optional(z.string()),
    /** The host's answer to end: its stop, recorded once checked (domain/backup/proposal.ts). */
    end: z.optional(endProposalSchema),
  }),
  z.object({
    ...target,
    state: z.literal('failed'),
    // A task failure without a cause reaches the catch with `Cause: null` (moto's engine sends it so).
    error: z.object({ Error: z.string(), Cause: z.optional(z.nullable(z.string())) }),
  }),
]);

const ebs = (snapshots: z.infer<typeof snapshotListSchema>): ManifestSnapshot[] =>
  snapshots.map((s) => ({ provider: 'ebs', snapshotId: s.snapshotId, volumeId: s.volumeId, state: s.state }));

const environmentSchema = z.object({
  /** The state machine's namespace and dimension (infra/monitoring/metrics-and-events.ts); unset: nothing is published. */
  PGSNAP_METRICS_NAMESPACE: z.optional(z.string()),
  PGSNAP_METRICS_DIMENSION: z.optional(z.string()),
});

/** The handler with its CloudWatch client given (the completed backup's durations, for the dashboard). */
export const recordBackupHandler =
  (cloudwatch: CloudWatchClient) =>
  async (event: unknown): Promise<{ state: LifecycleState }> => {
    const request = parseWith(eventSchema, event, 'the record-backup event');
    const repository = await openRepository(request.repository, request.cluster);
    try {
      // The host proposed its stop; the orchestrator checks it and records it before completing.
      if (request.state === 'completed' && request.end) {
        await recordStopped(repository, request.backupId, request.end);
      }
      const { state, manifest } = await recordStep(
        repository,
        request.backupId,
        request.state === 'failed'
          ? { step: 'fail', reason: `${request.error.Error}: ${request.error.Cause ?? 'no cause given'}` }
          : {
              step: request.state === 'snapshotting' ? 'snapshotsTaken' : 'snapshotsCompleted',
              snapshots: ebs(request.snapshots),
            },
      );
      if (request.state === 'completed' && manifest)
        await publishDurations(cloudwatch, manifest, request.snapshotsCreatedAt);
      return { state };
    } finally {
      repository.close();
    }
  };

/**
 * The backup is completed whether or not CloudWatch takes its durations: a failure to publish is logged,
 * and the step goes on.
 */
async function publishDurations(
  cloudwatch: CloudWatchClient,
  manifest: Manifest,
  snapshotsCreatedAt: string | undefined,
): Promise<void> {
  const env = parseWith(environmentSchema, process.env, 'the record-backup environment');
  if (!env.PGSNAP_METRICS_NAMESPACE || !env.PGSNAP_METRICS_DIMENSION) return;
  try {
    await publishBackupDurations(cloudwatch, manifest, {
      namespace: env.PGSNAP_METRICS_NAMESPACE,
      ...(snapshotsCreatedAt ? { snapshotsCreatedAt } : {}),
    });
  } catch (error) {
    logger.warn('the backup durations were not published', error as Error);
  }
}

export const handler = logged('record-backup', recordBackupHandler(new CloudWatchClient(sdkRetry)));
