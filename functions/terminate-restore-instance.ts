/**
 * Lambda for "Terminate the launched instance": only the instance the restore
 * launched, by the id its record names and by its tag.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { sdkRetry } from '#domain/aws-retry';
import { clusterNameSchema, restoreIdSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import { openRepository } from '#domain/repository/open';
import { terminateLaunched } from '#domain/restore/instance';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const eventSchema = z.object({
  restoreId: restoreIdSchema,
  cluster: z.optional(clusterNameSchema),
  repository: z.optional(z.string()),
});

/** The instance the record says the restore launched (never one it was given). */
async function recordedLaunch(request: z.infer<typeof eventSchema>): Promise<string[]> {
  if (!request.repository || !request.cluster) return [];
  const repository = await openRepository(request.repository, request.cluster);
  try {
    const instance = (await repository.readRestoreRecord(request.restoreId))?.instance;
    return instance?.launched ? [instance.instanceId] : [];
  } finally {
    repository.close();
  }
}

export const terminateRestoreInstanceHandler =
  (ec2: EC2Client) =>
  async (event: unknown): Promise<{ terminated: string[] }> => {
    const request = parseWith(eventSchema, event, 'the terminate-restore-instance event');
    return { terminated: await terminateLaunched(ec2, request.restoreId, await recordedLaunch(request)) };
  };

export const handler = logged(
  'terminate-restore-instance',
  terminateRestoreInstanceHandler(new EC2Client(sdkRetry)),
);
