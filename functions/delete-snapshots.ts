/** Lambda for "Delete the backup's snapshots", on the failure path. */
import { EC2Client } from '@aws-sdk/client-ec2';
import { sdkRetry } from '#domain/aws-retry';
import { deleteSnapshotSet } from '#domain/ebs/delete-snapshots';
import { backupIdSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const eventSchema = z.object({ backupId: backupIdSchema });

/** The handler with its EC2 client given: AWS's in Lambda, the local volumes' in `pgsnap demo`. */
export const deleteSnapshotsHandler =
  (ec2: EC2Client) =>
  (event: unknown): Promise<{ deleted: string[] }> =>
    deleteSnapshotSet(ec2, parseWith(eventSchema, event, 'the delete-snapshots event'));

export const handler = logged('delete-snapshots', deleteSnapshotsHandler(new EC2Client(sdkRetry)));
