/** Lambda for "Delete the backup's snapshots", on the failure path. */
import { EC2Client } from '@aws-sdk/client-ec2';
import { z } from 'zod';
import { parseWith } from '#domain/parse';
import { deleteSnapshotSet } from '#domain/snapshots';

const ec2 = new EC2Client({});

const eventSchema = z.object({ backupId: z.string().min(1) });

export async function handler(event: unknown): Promise<{ deleted: string[] }> {
  return deleteSnapshotSet(ec2, parseWith(eventSchema, event, 'the delete-snapshots event'));
}
