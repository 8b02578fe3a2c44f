/**
 * Lambda for "Check whether the volumes are available" and "Check whether
 * the volumes are attached": one poll, bounded by the time since the step
 * that asked for them; when all are ready, the record says so.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { sdkRetry } from '#domain/aws-retry';
import { VolumeFailedError } from '#domain/errors';
import { clusterNameSchema, restoreIdSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import { openRepository } from '#domain/repository/open';
import { recordRestore } from '#domain/restore/lifecycle';
import { checkRestoreVolumes, type VolumeProgress } from '#domain/restore/volumes';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const environmentSchema = z.object({
  PGSNAP_VOLUME_SECONDS: z._default(z.pipe(z.coerce.number(), z.int().check(z.gte(1))), 1800),
});

const eventSchema = z.object({
  restoreId: restoreIdSchema,
  cluster: clusterNameSchema,
  repository: z.string(),
  wanted: z.enum(['available', 'attached']),
  instanceId: z.optional(z.string()),
  since: z.iso.datetime(),
});

export const checkRestoreVolumesHandler =
  (ec2: EC2Client) =>
  async (event: unknown): Promise<VolumeProgress> => {
    const env = parseWith(environmentSchema, process.env, 'the check-restore-volumes environment');
    const request = parseWith(eventSchema, event, 'the check-restore-volumes event');
    const repository = await openRepository(request.repository, request.cluster);
    try {
      const record = (await repository.readRestoreRecord(request.restoreId))!;
      const progress = await checkRestoreVolumes(ec2, record.volumes, request.wanted, request.instanceId);
      if (progress.ready) {
        await recordRestore(repository, request.restoreId, { phase: request.wanted });
      } else if (Date.now() - Date.parse(request.since) > env.PGSNAP_VOLUME_SECONDS * 1000) {
        const waiting = Object.entries(progress.states)
          .filter(([, state]) => state !== request.wanted)
          .map(([id, state]) => `${id} ${state}`);
        throw new VolumeFailedError(
          `the restore's volumes are not ${request.wanted} after ${env.PGSNAP_VOLUME_SECONDS} s ` +
            `(${waiting.join(', ')}); check the EBS console for the volume's state and the account's volume limits`,
        );
      }
      return progress;
    } finally {
      repository.close();
    }
  };

export const handler = logged('check-restore-volumes', checkRestoreVolumesHandler(new EC2Client(sdkRetry)));
