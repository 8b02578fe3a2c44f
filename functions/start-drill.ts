/** Lambda that a drill schedule invokes: starts a drill execution named after the cluster and the scheduled time. */
import { SFNClient } from '@aws-sdk/client-sfn';
import { sdkRetry } from '#domain/aws-retry';
import { parseWith } from '#domain/parse';
import { type ScheduledDrill, startScheduledDrill } from '#domain/restore/execution';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const environmentSchema = z.object({ PGSNAP_STATE_MACHINE_ARN: z.string().check(z.startsWith('arn:')) });

/** The handler with its Step Functions client given. */
export const startDrillHandler =
  (sfn: SFNClient) =>
  async (event: unknown): Promise<ScheduledDrill> => {
    const { PGSNAP_STATE_MACHINE_ARN } = parseWith(
      environmentSchema,
      process.env,
      'the start-drill environment',
    );
    return startScheduledDrill(sfn, { stateMachineArn: PGSNAP_STATE_MACHINE_ARN, event });
  };

export const handler = logged('start-drill', startDrillHandler(new SFNClient(sdkRetry)));
