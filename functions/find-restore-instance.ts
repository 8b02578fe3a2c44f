/** Lambda for "Launch or find the target instance". */
import { EC2Client } from '@aws-sdk/client-ec2';
import { sdkRetry } from '#domain/aws-retry';
import { backupIdSchema, clusterNameSchema, restoreIdSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import { openRepository } from '#domain/repository/open';
import { type TargetInstance, targetInstance } from '#domain/restore/instance';
import { recordRestore } from '#domain/restore/lifecycle';
import { instanceRequestSchema } from '#domain/restore/request';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const eventSchema = z.object({
  restoreId: restoreIdSchema,
  cluster: clusterNameSchema,
  backupId: backupIdSchema,
  repository: z.string(),
  instance: instanceRequestSchema,
});

/** The handler with its EC2 client given: AWS's in Lambda, the local one in `pgsnap demo`. */
export const findRestoreInstanceHandler =
  (ec2: EC2Client) =>
  async (event: unknown): Promise<TargetInstance & { at: string }> => {
    const request = parseWith(eventSchema, event, 'the find-restore-instance event');
    const repository = await openRepository(request.repository, request.cluster);
    try {
      const manifest = (await repository.readManifest(request.backupId))!;
      const found = await targetInstance(ec2, request, manifest);
      await recordRestore(repository, request.restoreId, {
        phase: 'instance',
        instance: {
          instanceId: found.instanceId,
          availabilityZone: found.availabilityZone,
          launched: found.launched,
        },
      });
      return { ...found, at: new Date().toISOString() };
    } finally {
      repository.close();
    }
  };

export const handler = logged('find-restore-instance', findRestoreInstanceHandler(new EC2Client(sdkRetry)));
