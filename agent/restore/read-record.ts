/** The restore record a target host acts on, from the repository; a missing one says where it was looked for. */
import { PreconditionError } from '#domain/errors';
import type { Repository } from '#domain/repository/repository';
import type { RestoreRecord } from '#domain/repository/restore-record';

export async function readRecord(repository: Repository, restoreId: string): Promise<RestoreRecord> {
  const record = await repository.readRestoreRecord(restoreId);
  if (!record) {
    throw new PreconditionError(
      `there is no restore record ${restoreId} in ${repository.url} (${repository.restoreKey(restoreId)}): ` +
        'the restore state machine writes it before it asks the host; check --repo, --cluster and the restore id',
    );
  }
  return record;
}

/**
 * mount and restore act on a restore in progress; a finished one (completed, failed) has been cleaned up.
 * One in progress always names its backup (only a request refused at once lacks one, and it is failed).
 */
export async function readRecordInProgress(
  repository: Repository,
  restoreId: string,
): Promise<RestoreRecord & { backupId: string }> {
  const record = await readRecord(repository, restoreId);
  if (record.state === 'completed' || record.state === 'failed' || !record.backupId) {
    throw new PreconditionError(
      `restore ${restoreId} is ${record.state}${record.failure ? ` (${record.failure.reason})` : ''}: its volumes ` +
        'were cleaned up. Start a new restore (pgsnap restore start) rather than mounting this one again',
    );
  }
  return record as RestoreRecord & { backupId: string };
}
