/** Lambda for "Check the request and find the cluster": the state machine's first step. */
import { EC2Client } from '@aws-sdk/client-ec2';
import { sdkRetry } from '#domain/aws-retry';
import { type BackupPlan, planBackup } from '#domain/backup/plan';
import { readCatalog } from '#domain/catalog';
import { parseWith } from '#domain/parse';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

/** What the state machine passes from its context object ($$.Execution, $$.StateMachine). */
const eventSchema = z.object({
  input: z.unknown(),
  executionName: z.string(),
  executionArn: z.string(),
  /** ISO 8601 with milliseconds (`2026-11-21T14:30:00.123Z`); part of the backupId of an execution not named after one. */
  executionStartTime: z.iso.datetime({ offset: true }),
  stateMachineArn: z.string(),
});

/** The handler with its clients given: AWS's in Lambda, local stand-ins in `pgsnap demo`. */
export const prepareBackupHandler =
  (clients: { ec2: EC2Client }) =>
  (event: unknown): Promise<BackupPlan> => {
    const request = parseWith(eventSchema, event, 'the prepare-backup event');
    return readCatalog().then((catalog) => planBackup(clients, request, catalog));
  };

export const handler = logged('prepare-backup', prepareBackupHandler({ ec2: new EC2Client(sdkRetry) }));
