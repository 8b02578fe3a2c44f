/** Lambda for the manifest steps: snapshots recorded, backup completed, backup failed. */

import { type LifecycleState, recordStep } from '#domain/backup/lifecycle';
import { snapshotListSchema } from '#domain/ebs/snapshots';
import { parseWith } from '#domain/parse';
import type { ManifestSnapshot } from '#domain/repository/manifest';
import { openRepository } from '#domain/repository/open';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const target = { cluster: z.string(), backupId: z.string(), repository: z.string() };

const eventSchema = z.discriminatedUnion('state', [
  z.object({ ...target, state: z.literal('snapshotting'), snapshots: snapshotListSchema }),
  z.object({ ...target, state: z.literal('completed'), snapshots: snapshotListSchema }),
  z.object({
    ...target,
    state: z.literal('failed'),
    error: z.object({ Error: z.string(), Cause: z.optional(z.string()) }),
  }),
]);

const ebs = (snapshots: z.infer<typeof snapshotListSchema>): ManifestSnapshot[] =>
  snapshots.map((s) => ({ provider: 'ebs', snapshotId: s.snapshotId, volumeId: s.volumeId, state: s.state }));

async function handle(event: unknown): Promise<{ state: LifecycleState }> {
  const request = parseWith(eventSchema, event, 'the record-backup event');
  const repository = await openRepository(request.repository, request.cluster);
  try {
    const { state } = await recordStep(
      repository,
      request.backupId,
      request.state === 'failed'
        ? { step: 'fail', reason: `${request.error.Error}: ${request.error.Cause ?? 'no cause given'}` }
        : {
            step: request.state === 'snapshotting' ? 'snapshotsTaken' : 'snapshotsCompleted',
            snapshots: ebs(request.snapshots),
          },
    );
    return { state };
  } finally {
    repository.close();
  }
}

export const handler = logged('record-backup', handle);
