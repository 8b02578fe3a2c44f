/**
 * Typed errors. Their `name` is part of the interface: Step Functions Retry/Catch
 * and the CLI's exit code both match on it.
 */

/** Bad command line or input: exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Something must change before the command can work (server settings, a backup in progress): exit code 3. */
export class PreconditionError extends Error {
  override name = 'PreconditionError';
}

/** The backup session was lost or aborted; the backup is not valid and must be taken again. */
export class BackupInvalidError extends Error {
  override name = 'BackupInvalidError';
}

/** PostgreSQL could not be reached or refused us. */
export class ConnectionError extends Error {
  override name = 'ConnectionError';
}

/** A wait ran past its bound. */
export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

export const exitCodes = { ok: 0, failure: 1, usage: 2, precondition: 3 } as const;

/**
 * The exit status of `wal-fetch` for every failure. PostgreSQL takes any exit
 * status up to 125 from restore_command as "no such file" and goes on: past
 * the consistency point it ends recovery there and promotes, silently
 * dropping the rest of the WAL. Above 125 it stops recovery with FATAL
 * (RestoreArchivedFile: wait_result_is_any_signal(rc, true)), which is what a
 * damaged or unreachable repository, or a broken pgsnap, calls for.
 */
export const stopRecoveryExitCode = 128;

export function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError) return exitCodes.usage;
  if (error instanceof PreconditionError) return exitCodes.precondition;
  return exitCodes.failure;
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The state machine's input (or a Lambda's event) is not valid; the message names the field. */
export class InvalidInputError extends UsageError {
  override name = 'InvalidInputError';
}

/** An EBS snapshot of the set ended in `error`, vanished, or never completed: the backup is not valid. */
export class SnapshotFailedError extends Error {
  override name = 'SnapshotFailedError';
}

/**
 * An earlier CreateSnapshots of the backup may have taken a set that cannot
 * be found yet: the backup is given up rather than snapshotted twice.
 */
export class SnapshotSetUnknownError extends Error {
  override name = 'SnapshotSetUnknownError';
}

/** The cluster's database host could not be found, or more than one instance matched. */
export class InstanceNotFoundError extends PreconditionError {
  override name = 'InstanceNotFoundError';
}

/** The repository has no manifest for the backup, or one in a state that does not allow the step. */
export class ManifestStateError extends PreconditionError {
  override name = 'ManifestStateError';
  /** The backup, and the state its manifest is in (`none`: it has none), when the error is about one. */
  readonly backupId: string | undefined;
  readonly state: string | undefined;

  constructor(message: string, about: { backupId?: string; state?: string } = {}, options?: ErrorOptions) {
    super(message, options);
    this.backupId = about.backupId;
    this.state = about.state;
  }
}

/** The WAL a restore needs is not all in the repository: the message names the first missing segment. */
export class WalGapError extends PreconditionError {
  override name = 'WalGapError';
}

/** A check of the restored cluster failed (pg_amcheck, checksums, the operator's SQL check). */
export class RestoreCheckFailedError extends Error {
  override name = 'RestoreCheckFailedError';
}

/**
 * The restored server stopped before recovery reached its target: the WAL
 * ends before it ("recovery ended before configured recovery target was
 * reached"), or recovery hit another FATAL. The message quotes the server's
 * log line.
 */
export class RecoveryTargetNotReachedError extends Error {
  override name = 'RecoveryTargetNotReachedError';
}

/** A volume of the restore did not become available or attached in time, or EC2 put it in error. */
export class VolumeFailedError extends Error {
  override name = 'VolumeFailedError';
}

/** A restore's mount point already has a file system mounted, or files in it; nothing was mounted over it. */
export class MountPointInUseError extends PreconditionError {
  override name = 'MountPointInUseError';
}

/** A volume of the restore is not attached to this host (no NVMe disk with its id as serial, no local volume). */
export class VolumeNotFoundError extends PreconditionError {
  override name = 'VolumeNotFoundError';
}

/** A file system spans more than one volume (LVM, md): pgsnap mount puts back one volume per file system. */
export class UnsupportedVolumeLayoutError extends PreconditionError {
  override name = 'UnsupportedVolumeLayoutError';
}

/**
 * The restore record in the repository is not the one the state machine
 * wrote: its digest differs from the one the restore document carries. Hosts
 * can sometimes write there, so a target acts only on the record it was sent.
 */
export class RestoreRecordMismatchError extends PreconditionError {
  override name = 'RestoreRecordMismatchError';
}

/**
 * A path the restore would act on as root is not plain (a link on the way, a
 * mount point outside mountRoot, a directory of an unexpected owner): the
 * restored volumes and the record come from a database host, and are not
 * followed where they lead.
 */
export class UnsafeRestorePathError extends PreconditionError {
  override name = 'UnsafeRestorePathError';
}
