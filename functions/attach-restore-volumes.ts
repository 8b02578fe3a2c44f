/** Lambda for "Attach the volumes to the instance". */
import { EC2Client } from '@aws-sdk/client-ec2';
import { sdkRetry } from '#domain/aws-retry';
import { clusterNameSchema, restoreIdSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import { openRepository } from '#domain/repository/open';
import { recordVolumes } from '#domain/restore/lifecycle';
import { attachRestoreVolumes } from '#domain/restore/volumes';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const eventSchema = z.object({
  restoreId: restoreIdSchema,
  cluster: clusterNameSchema,
  repository: z.string(),
  instanceId: z.string(),
});

export const attachRestoreVolumesHandler =
  (ec2: EC2Client) =>
  async (event: unknown): Promise<{ devices: Record<string, string>; at: string; recordSha256: string }> => {
    const request = parseWith(eventSchema, event, 'the attach-restore-volumes event');
    const repository = await openRepository(request.repository, request.cluster);
    try {
      const record = (await repository.readRestoreRecord(request.restoreId))!;
      const volumes = await attachRestoreVolumes(ec2, record.volumes, request.instanceId);
      const recordSha256 = await recordVolumes(repository, request.restoreId, volumes, 'attached');
      return {
        // The restore document hands it to the host, which acts only on a record with this digest.
        recordSha256,
        devices: Object.fromEntries(volumes.map((v) => [v.volumeId!, v.device!])),
        at: new Date().toISOString(),
      };
    } finally {
      repository.close();
    }
  };

export const handler = logged('attach-restore-volumes', attachRestoreVolumesHandler(new EC2Client(sdkRetry)));
