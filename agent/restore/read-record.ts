/**
 * The restore record a target host acts on, from the repository; a missing one says where it was looked for.
 * Given the digest the restore document carries, a record with any other is refused: a database host may be
 * able to rewrite `restores/*`, and the target acts only on the record the state machine wrote.
 */
import { PreconditionError, RestoreRecordMismatchError, UsageError } from '#domain/errors';
import type { Repository } from '#domain/repository/repository';
import { type RestoreRecord, recordDigest, recordDigestPattern } from '#domain/repository/restore-record';

/** `--record-sha256`, as restore and unmount take it. */
export function recordDigestOf(command: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!recordDigestPattern.test(value)) {
    throw new UsageError(`pgsnap ${command}: --record-sha256 must be 64 lower-case hex digits`);
  }
  return value;
}

export async function readRecord(
  repository: Repository,
  restoreId: string,
  expectedDigest?: string,
): Promise<RestoreRecord> {
  const record = await repository.readRestoreRecord(restoreId);
  if (!record) {
    throw new PreconditionError(
      `there is no restore record ${restoreId} in ${repository.url} (${repository.restoreKey(restoreId)}): ` +
        'the restore state machine writes it before it asks the host; check --repo, --cluster and the restore id',
    );
  }
  if (expectedDigest !== undefined) {
    const digest = recordDigest(record);
    if (digest !== expectedDigest) {
      throw new RestoreRecordMismatchError(
        `the restore record ${repository.restoreKey(restoreId)} in ${repository.url} is not the one the state ` +
          `machine wrote: its digest is ${digest}, the restore command carries ${expectedDigest}. Nothing was ` +
          'mounted or started. Someone rewrote it after the attach step (a database host that may write ' +
          'restores/*?): check the bucket policy and the object versions of that key, then start a new restore',
      );
    }
  }
  if (record.restoreId !== restoreId) {
    throw new RestoreRecordMismatchError(
      `the restore record at ${repository.restoreKey(restoreId)} names restore ${record.restoreId}, not ${restoreId}`,
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
  expectedDigest?: string,
): Promise<RestoreRecord & { backupId: string }> {
  const record = await readRecord(repository, restoreId, expectedDigest);
  if (record.state === 'completed' || record.state === 'failed' || !record.backupId) {
    throw new PreconditionError(
      `restore ${restoreId} is ${record.state}${record.failure ? ` (${record.failure.reason})` : ''}: its volumes ` +
        'were cleaned up. Start a new restore (pgsnap restore start) rather than mounting this one again',
    );
  }
  return record as RestoreRecord & { backupId: string };
}
