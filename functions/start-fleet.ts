/** Lambda that a fleet schedule invokes: one backup execution per cluster found by its hosts' tags. */
import { EC2Client } from '@aws-sdk/client-ec2';
import { SFNClient } from '@aws-sdk/client-sfn';
import { sdkRetry } from '#domain/aws-retry';
import { type FleetStart, startFleetBackups } from '#domain/backup/fleet';
import { readCatalog } from '#domain/catalog';
import { parseWith } from '#domain/parse';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const environmentSchema = z.object({ PGSNAP_STATE_MACHINE_ARN: z.string().check(z.startsWith('arn:')) });

/** The handler with its clients given. */
export const startFleetHandler =
  (clients: { ec2: EC2Client; sfn: SFNClient }) =>
  async (event: unknown): Promise<FleetStart> => {
    const { PGSNAP_STATE_MACHINE_ARN } = parseWith(
      environmentSchema,
      process.env,
      'the start-fleet environment',
    );
    // Read only for discovery: a schedule of listed clusters names them.
    return startFleetBackups(clients, {
      stateMachineArn: PGSNAP_STATE_MACHINE_ARN,
      catalog: () => readCatalog(),
      event,
    });
  };

export const handler = logged(
  'start-fleet',
  startFleetHandler({ ec2: new EC2Client(sdkRetry), sfn: new SFNClient(sdkRetry) }),
);
