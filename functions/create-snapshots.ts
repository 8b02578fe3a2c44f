/** Lambda for "Snapshot the cluster's volumes". */
import { EC2Client } from '@aws-sdk/client-ec2';
import { z } from 'zod';
import { parseWith } from '#domain/parse';
import { createSnapshotSet, type SnapshotSet } from '#domain/snapshots';

const ec2 = new EC2Client({});

const eventSchema = z.object({
  cluster: z.string(),
  backupId: z.string(),
  instanceId: z.string(),
  /** From the configuration; when empty, the volumes that begin reported. */
  volumeIds: z.array(z.string()),
  begin: z.object({ volumes: z.array(z.object({ volumeId: z.string() })).optional() }),
});

export async function handler(event: unknown): Promise<SnapshotSet> {
  const request = parseWith(eventSchema, event, 'the create-snapshots event');
  const volumeIds =
    request.volumeIds.length > 0 ? request.volumeIds : (request.begin.volumes ?? []).map((v) => v.volumeId);
  return createSnapshotSet(ec2, { ...request, volumeIds });
}
