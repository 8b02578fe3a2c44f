/** Lambda for "Terminate the launched instance": only instances the restore launched, found by its tag. */
import { EC2Client } from '@aws-sdk/client-ec2';
import { restoreIdSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import { terminateLaunched } from '#domain/restore/instance';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const eventSchema = z.object({ restoreId: restoreIdSchema });

export const terminateRestoreInstanceHandler =
  (ec2: EC2Client) =>
  async (event: unknown): Promise<{ terminated: string[] }> => {
    const request = parseWith(eventSchema, event, 'the terminate-restore-instance event');
    return { terminated: await terminateLaunched(ec2, request.restoreId) };
  };

export const handler = logged(
  'terminate-restore-instance',
  terminateRestoreInstanceHandler(new EC2Client({})),
);
