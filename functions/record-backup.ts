/** Lambda for the manifest steps: snapshots recorded, backup completed, backup failed. */

import { recordCompleted, recordFailed, recordSnapshotting } from '#domain/backup/record';
import { parseWith } from '#domain/parse';
import type { BackupState } from '#domain/repository/manifest';
import { openRepository } from '#domain/repository/open';
import * as z from '#domain/zod';

const snapshots = z.array(z.object({ snapshotId: z.string(), volumeId: z.string(), state: z.string() }));
const target = { cluster: z.string(), backupId: z.string(), repository: z.string() };

const eventSchema = z.discriminatedUnion('state', [
  z.object({ ...target, state: z.literal('snapshotting'), snapshots }),
  z.object({ ...target, state: z.literal('completed'), snapshots }),
  z.object({
    ...target,
    state: z.literal('failed'),
    error: z.object({ Error: z.string(), Cause: z.optional(z.string()) }),
  }),
]);

export async function handler(event: unknown): Promise<{ state: BackupState | 'none' }> {
  const request = parseWith(eventSchema, event, 'the record-backup event');
  const repository = await openRepository(request.repository, request.cluster);
  try {
    switch (request.state) {
      case 'snapshotting':
        return await recordSnapshotting(repository, request);
      case 'completed':
        return await recordCompleted(repository, request);
      case 'failed':
        return await recordFailed(repository, {
          backupId: request.backupId,
          reason: `${request.error.Error}: ${request.error.Cause ?? 'no cause given'}`,
        });
    }
  } finally {
    repository.close();
  }
}
