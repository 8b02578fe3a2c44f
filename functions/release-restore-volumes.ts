/**
 * Lambda for "Release the restore's volumes": one pass over every volume
 * tagged with the restore (detach, then delete), repeated by the state
 * machine until none is left, and given up after a bounded number of passes.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { VolumeFailedError } from '#domain/errors';
import { restoreIdSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import { releaseRestoreVolumes } from '#domain/restore/volumes';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const maxPasses = 60;

const eventSchema = z.object({
  restoreId: restoreIdSchema,
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
    const pass = await releaseRestoreVolumes(ec2, request.restoreId, { force: request.force });
    const passes = request.release.passes + 1;
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

export const handler = logged('release-restore-volumes', releaseRestoreVolumesHandler(new EC2Client({})));
