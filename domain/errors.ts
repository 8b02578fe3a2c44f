/**
 * Typed errors. Their `name` is part of the interface: Step Functions Retry/Catch
 * and the CLI's exit code both match on it.
 */

/**
 * A command line or input is not valid: an unknown command or flag, a missing or malformed value, two flags
 * that exclude each other. Exit code 2.
 *
 * What to do: Correct the command line; `pgsnap <command> --help` lists the command's flags.
 */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * Something must change before the command can work: a server setting, the role's rights, a backup already
 * in progress on the cluster. Exit code 3.
 *
 * What to do: Change what the message names and run the command again; `pgsnap preflight` and `pgsnap
 * doctor` list every such finding on a host.
 */
export class PreconditionError extends Error {
  override name = 'PreconditionError';
}

/**
 * Another backup of the cluster is in progress, or starting, on its host: a cluster has one backup at a time,
 * and the host is the one place that knows for sure (no listing of executions needed). Exit code 3.
 *
 * What to do: Nothing when a schedule started this backup: the running one covers it, and the state machine
 * ends this execution in "Leave it to the running backup". Otherwise wait for the running backup to end
 * (`pgsnap status`), or end it with `pgsnap end` or `pgsnap abort`, and start again.
 */
export class BackupInProgressError extends PreconditionError {
  override name = 'BackupInProgressError';
}

/**
 * The backup session was lost or aborted (the server restarted, its backend was terminated, the holder or
 * the agent service was killed or stopped, `--max-duration` passed): PostgreSQL aborted the backup, which is
 * not valid.
 *
 * What to do: Take the backup again. If it recurs, find why the session closed: the PostgreSQL log at that
 * time, the agent's log (`journalctl -u pgsnap-agent`), a pooler between the agent and the server.
 */
export class BackupInvalidError extends Error {
  override name = 'BackupInvalidError';
}

/**
 * PostgreSQL could not be reached or refused the agent's connection: host, port, authentication, or a
 * database that does not exist.
 *
 * What to do: Check the libpq settings (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSFILE` in
 * `/etc/pgsnap/pgsnap.env`) and that the server accepts the connection (`pg_hba.conf`); the message names
 * what failed.
 */
export class ConnectionError extends Error {
  override name = 'ConnectionError';
}

/**
 * A wait ran past its bound: `end`'s wait for the archive (`--archive-timeout`), snapshots not completed
 * within `timeouts.snapshotHours`, DR copies, or a restored server that did not reach its target in time.
 *
 * What to do: The message says which wait and how far it got. On a standby, have the primary switch WAL
 * (`SELECT pg_switch_wal()`) or set `archive_timeout` there; otherwise check what was waited for (the
 * archiver, the snapshots' progress in EC2, the restored server's log) and raise the bound if the work needs
 * longer.
 */
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

/**
 * The state machine's input or a Lambda's event is not valid; the message names the field. The execution
 * fails on its first step, having made nothing.
 *
 * What to do: Correct the input (the execution input is described in the configuration page of the docs) and
 * start a new execution.
 */
export class InvalidInputError extends UsageError {
  override name = 'InvalidInputError';
}

/**
 * An EBS snapshot of the backup's set ended in `error`, vanished, or never completed: the backup is not
 * valid and the state machine's cleanup path fails it.
 *
 * What to do: The next backup takes a new set. If it recurs, check the volumes in EC2 and the account's
 * snapshot quotas.
 */
export class SnapshotFailedError extends Error {
  override name = 'SnapshotFailedError';
}

/**
 * A DR copy could not be made, ended in error, or was given up after `dr.copyHours`; the backup itself stays
 * completed, both manifests record the failure and the cluster's `CopyFailed` alarm fires.
 *
 * What to do: Read the copy's execution and the message (snapshots under the AWS managed key `aws/ebs`
 * cannot be shared with another account: use a customer managed key). The next backup is copied again; DR
 * retention removes the half-made copies.
 */
export class CopyFailedError extends Error {
  override name = 'CopyFailedError';
}

/**
 * An earlier CreateSnapshots of the backup may have taken a set that cannot be found yet: the backup is
 * given up rather than snapshotted twice.
 *
 * What to do: Nothing to repair: the failure path deletes what the earlier call made, and the next backup
 * starts afresh.
 */
export class SnapshotSetUnknownError extends Error {
  override name = 'SnapshotSetUnknownError';
}

/**
 * No share of an account budget (pending EBS snapshots, concurrent DR copies) is free: other backups hold it.
 * The state machine retries with backoff and full jitter before `begin`, so the wait never lengthens the
 * time the database spends in backup mode; only after its last retry does the execution fail.
 *
 * What to do: Nothing for a burst: the backup starts when a share comes free. If it recurs, spread the
 * schedules (flexible windows), or look for executions that end without returning their share (the lease
 * expires after `timeouts.snapshotHours`); `budgets` in the configuration sets the shares.
 */
export class BudgetExhaustedError extends Error {
  override name = 'BudgetExhaustedError';
}

/**
 * The cluster's database host could not be found, or more than one instance matched its tags.
 *
 * What to do: Check the cluster's `instance` in the configuration: the instance id exists and runs, or
 * exactly one running instance carries the tags.
 */
export class InstanceNotFoundError extends PreconditionError {
  override name = 'InstanceNotFoundError';
}

/**
 * The repository has no manifest for the backup, or one in a state that does not allow the step: a restore
 * of a backup that is not `completed`, a step of a backup that already ended.
 *
 * What to do: The message names the backup and its manifest's state; pick a `completed` backup (`pgsnap
 * backups list`).
 */
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

/**
 * The WAL a restore needs is not all in the repository: the message names the first missing segment.
 *
 * What to do: Find why that segment was not archived (`pg_stat_archiver`, the server log); restore to a
 * target before the gap, or from a later backup. In DR, the newest WAL may not be replicated yet.
 */
export class WalGapError extends PreconditionError {
  override name = 'WalGapError';
}

/**
 * A check of the restored cluster failed (pg_amcheck, checksums, the operator's SQL check): the restore or
 * drill is failed.
 *
 * What to do: Read the check's output in the restore record (`pgsnap restores show R`). Damage found by
 * pg_amcheck or the checksums means the backup or its WAL is damaged: drill an older backup and look at the
 * source.
 */
export class RestoreCheckFailedError extends Error {
  override name = 'RestoreCheckFailedError';
}

/**
 * The restored server stopped before recovery reached its target: the WAL ends before it ("recovery ended
 * before configured recovery target was reached"), or recovery hit another FATAL. The message quotes the
 * server's log line.
 *
 * What to do: Choose a target the archived WAL reaches (`pgsnap backups show ID --verify` checks the WAL
 * range), or fix what the quoted log line says.
 */
export class RecoveryTargetNotReachedError extends Error {
  override name = 'RecoveryTargetNotReachedError';
}

/**
 * A volume of the restore did not become available or attached in time, or EC2 put it in error.
 *
 * What to do: Check the volume in EC2 (tagged with the restore's `pgsnap:restore-id`); the cleanup path
 * deletes what the restore made. Start the restore again; if it recurs, check the account's EBS quotas in
 * the target's zone.
 */
export class VolumeFailedError extends Error {
  override name = 'VolumeFailedError';
}

/**
 * A restore's mount point already has a file system mounted, or files in it; nothing was mounted over it.
 *
 * What to do: Unmount or empty the mount point (`pgsnap unmount --restore-id R` for an earlier restore's),
 * or restore onto another instance.
 */
export class MountPointInUseError extends PreconditionError {
  override name = 'MountPointInUseError';
}

/**
 * A volume of the restore is not attached to this host (no NVMe disk with its id as serial, no local
 * volume).
 *
 * What to do: Check that the restore's volumes are attached to this instance (`lsblk -o NAME,SERIAL`) and
 * that the command runs on the restore's target host.
 */
export class VolumeNotFoundError extends PreconditionError {
  override name = 'VolumeNotFoundError';
}

/**
 * A file system spans more than one volume (LVM, md): pgsnap mount puts back one volume per file system.
 *
 * What to do: Restore such a backup by hand: create the volumes from its snapshots, assemble them, and run
 * `pgsnap restore --backup-id ID --pgdata DIR` (restoring on a host, in the restore page of the docs).
 */
export class UnsupportedVolumeLayoutError extends PreconditionError {
  override name = 'UnsupportedVolumeLayoutError';
}

/**
 * The restore record in the repository is not the one the state machine wrote: its digest differs from the
 * one the restore document carries. Hosts can sometimes write there, so a target acts only on the record it
 * was sent.
 *
 * What to do: Treat it as an attack on the repository: find who rewrote `<cluster>/restores/<restoreId>.json`
 * (S3 access logs, object versions), check the bucket policy denies hosts writes to `restores/*`, and start
 * the restore again.
 */
export class RestoreRecordMismatchError extends PreconditionError {
  override name = 'RestoreRecordMismatchError';
}

/**
 * A path the restore would act on as root is not plain (a link on the way, a mount point outside mountRoot,
 * a directory of an unexpected owner): the restored volumes and the record come from a database host, and
 * are not followed where they lead.
 *
 * What to do: Check the backup's recorded layout and the restored volumes for the link or path the message
 * names; a layout that needs links cannot be restored by pgsnap as root. Make mountRoot and its parents
 * root-owned and not writable by others.
 */
export class UnsafeRestorePathError extends PreconditionError {
  override name = 'UnsafeRestorePathError';
}

/**
 * A snapshot the restore would make a volume from is not tagged with the restored cluster in EC2
 * (`pgsnap:cluster`): the record names a snapshot of another cluster, or one pgsnap did not take.
 * Nothing was created.
 *
 * What to do: Check the backup's manifest and the snapshot's tags in EC2 (`aws ec2 describe-snapshots
 * --snapshot-ids …`); a manifest naming another cluster's snapshots was not written by pgsnap: find who
 * wrote it (S3 access logs, object versions) before restoring from it.
 */
export class SnapshotOfAnotherClusterError extends PreconditionError {
  override name = 'SnapshotOfAnotherClusterError';
}
