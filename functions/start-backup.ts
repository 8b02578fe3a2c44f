/** Lambda that a schedule invokes: starts a backup execution named after the cluster and the scheduled time. */
import { SFNClient } from '@aws-sdk/client-sfn';
import { sdkRetry } from '#domain/aws-retry';
import { type ScheduledBackup, startScheduledBackup } from '#domain/backup/execution';
import { parseWith } from '#domain/parse';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const environmentSchema = z.object({ PGSNAP_STATE_MACHINE_ARN: z.string().check(z.startsWith('arn:')) });

/** The handler with its Step Functions client given. */
export const startBackupHandler =
  (sfn: SFNClient) =>
  async (event: unknown): Promise<ScheduledBackup> => {
    const { PGSNAP_STATE_MACHINE_ARN } = parseWith(
      environmentSchema,
      process.env,
      'the start-backup environment',
    );
    return startScheduledBackup(sfn, { stateMachineArn: PGSNAP_STATE_MACHINE_ARN, event });
  };

export const handler = logged('start-backup', startBackupHandler(new SFNClient(sdkRetry)));
