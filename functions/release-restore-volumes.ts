/**
 * Lambda for "Release the restore's volumes": one pass over every volume the
 * restore's record names or its tag finds (detach, then delete), repeated by
 * the state machine until none is left, and given up after a bounded number
 * of passes.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { sdkRetry } from '#domain/aws-retry';
import { VolumeFailedError } from '#domain/errors';
import { clusterNameSchema, restoreIdSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import { openRepository } from '#domain/repository/open';
import { releaseRestoreVolumes } from '#domain/restore/volumes';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const maxPasses = 60;
/** Passes (5 s apart) during which a recorded volume that EC2 does not show yet may still appear. */
const gracePasses = 12;

const eventSchema = z.object({
  restoreId: restoreIdSchema,
  /** Where the restore's record is: the volumes it names are released even if their tag does not show yet. */
  cluster: z.optional(clusterNameSchema),
  repository: z.optional(z.string()),
  force: z.boolean(),
  release: z._default(z.object({ passes: z.int(), deleted: z.array(z.string()) }), {
    passes: 0,
    deleted: [],
  }),
});

export const releaseRestoreVolumesHandler =
  (ec2: EC2Client) =>
  async (
    event: unknown,
  ): Promise<{ passes: number; remaining: number; deleted: string[]; states: Record<string, string> }> => {
    const request = parseWith(eventSchema, event, 'the release-restore-volumes event');
    const passes = request.release.passes + 1;
    const pass = await releaseRestoreVolumes(ec2, request.restoreId, {
      force: request.force,
      recorded: await recordedVolumes(request),
      alreadyDeleted: request.release.deleted,
      graceOver: passes > gracePasses,
    });
    if (pass.remaining > 0 && passes >= maxPasses) {
      throw new VolumeFailedError(
        `volumes of restore ${request.restoreId} are still not deleted after ${passes} passes ` +
          `(${Object.entries(pass.states)
            .map(([id, state]) => `${id} ${state}`)
            .join(', ')}): delete them by their ` +
          `pgsnap:restore-id tag`,
      );
    }
    return {
      passes,
      remaining: pass.remaining,
      deleted: [...new Set([...request.release.deleted, ...pass.deleted])],
      states: pass.states,
    };
  };

async function recordedVolumes(request: { restoreId: string; cluster?: string; repository?: string }) {
  if (!request.repository || !request.cluster) return [];
  const repository = await openRepository(request.repository, request.cluster);
  try {
    const record = await repository.readRestoreRecord(request.restoreId);
    return (record?.volumes ?? []).flatMap((v) => (v.volumeId ? [v.volumeId] : []));
  } finally {
    repository.close();
  }
}

export const handler = logged(
  'release-restore-volumes',
  releaseRestoreVolumesHandler(new EC2Client(sdkRetry)),
);
