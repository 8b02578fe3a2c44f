/** Lambda for the restore record's steps: the restored cluster and its checks, the completion, the failure. */
import { clusterNameSchema, restoreIdSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import { openRepository } from '#domain/repository/open';
import { type RecordUpdate, recordRestore, recordUpdateSchema } from '#domain/restore/lifecycle';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const target = { restoreId: restoreIdSchema, cluster: clusterNameSchema, repository: z.string() };

const eventSchema = z.union([
  z.object({ ...target, update: recordUpdateSchema }),
  /*
   * "Mark the restore failed" is given the whole state: what the cleanup released and terminated is
   * there only as far as it got, and a missing path in a Task's parameters would fail the step.
   */
  z.object({
    ...target,
    error: z.object({ Error: z.string(), Cause: z.optional(z.string()) }),
    release: z.optional(z.object({ deleted: z.array(z.string()) })),
    terminated: z.optional(z.object({ terminated: z.optional(z.array(z.string())) })),
  }),
]);

async function handle(
  event: unknown,
): Promise<{ state: string; rtoSeconds?: number; timeToFullSpeedSeconds?: number }> {
  const request = parseWith(eventSchema, event, 'the record-restore event');
  const update: RecordUpdate =
    'update' in request
      ? request.update
      : {
          phase: 'failed',
          error: request.error,
          cleanup: {
            deleted: request.release?.deleted ?? [],
            terminated: request.terminated?.terminated ?? [],
          },
        };
  const repository = await openRepository(request.repository, request.cluster);
  try {
    return await recordRestore(repository, request.restoreId, update);
  } finally {
    repository.close();
  }
}

export const handler = logged('record-restore', handle);
