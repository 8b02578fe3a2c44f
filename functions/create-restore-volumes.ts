/** Lambda for "Create volumes from the snapshots". */
import { EC2Client } from '@aws-sdk/client-ec2';
import { sdkRetry } from '#domain/aws-retry';
import { clusterNameSchema, restoreIdSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import { openRepository } from '#domain/repository/open';
import { recordVolumes } from '#domain/restore/lifecycle';
import { createRestoreVolumes } from '#domain/restore/volumes';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const eventSchema = z.object({
  restoreId: restoreIdSchema,
  cluster: clusterNameSchema,
  repository: z.string(),
  availabilityZone: z.string(),
  options: z.object({ kmsKeyId: z.optional(z.string()), initializationRate: z.optional(z.int()) }),
});

export const createRestoreVolumesHandler =
  (ec2: EC2Client) =>
  async (event: unknown): Promise<{ volumeIds: string[]; at: string }> => {
    const request = parseWith(eventSchema, event, 'the create-restore-volumes event');
    const repository = await openRepository(request.repository, request.cluster);
    try {
      const record = (await repository.readRestoreRecord(request.restoreId))!;
      const volumes = await createRestoreVolumes(ec2, record, {
        availabilityZone: request.availabilityZone,
        ...request.options,
      });
      await recordVolumes(repository, request.restoreId, volumes, 'volumes');
      return { volumeIds: volumes.map((v) => v.volumeId!), at: new Date().toISOString() };
    } finally {
      repository.close();
    }
  };

export const handler = logged('create-restore-volumes', createRestoreVolumesHandler(new EC2Client(sdkRetry)));
