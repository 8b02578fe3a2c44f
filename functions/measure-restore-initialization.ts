/**
 * Lambda for "Measure the volumes' initialization": once the restored server
 * is open, what EBS says of its volumes' initialization (DescribeVolumeStatus)
 * goes into the record, which then holds EBS's own time to full speed when a
 * rate was provisioned, and the model's estimate otherwise
 * (domain/restore/initialization.ts).
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { sdkRetry } from '#domain/aws-retry';
import { clusterNameSchema, restoreIdSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import { openRepository } from '#domain/repository/open';
import { measureInitialization } from '#domain/restore/initialization';
import { recordRestore } from '#domain/restore/lifecycle';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const eventSchema = z.object({
  restoreId: restoreIdSchema,
  cluster: clusterNameSchema,
  repository: z.string(),
});

export const measureRestoreInitializationHandler =
  (ec2: EC2Client) =>
  async (
    event: unknown,
  ): Promise<{ state: string; rtoSeconds?: number; timeToFullSpeedSeconds?: number }> => {
    const request = parseWith(eventSchema, event, 'the measure-restore-initialization event');
    const repository = await openRepository(request.repository, request.cluster);
    try {
      const record = (await repository.readRestoreRecord(request.restoreId))!;
      const volumeIds = record.volumes.flatMap((v) => (v.volumeId ? [v.volumeId] : []));
      const measured = await measureInitialization(ec2, volumeIds);
      return await recordRestore(repository, request.restoreId, { phase: 'initialization', measured });
    } finally {
      repository.close();
    }
  };

export const handler = logged(
  'measure-restore-initialization',
  measureRestoreInitializationHandler(new EC2Client(sdkRetry)),
);
