/**
 * Whether a data directory holds a backup's snapshot, as it was taken: the
 * backup's cluster (system identifier), pg_control's latest checkpoint within
 * the backup (a server that ran on since, the live cluster or an earlier
 * restore, has checkpointed after its stop), and a state a server in backup
 * mode has. Checked before a restore changes anything: a stopped copy of the
 * live PGDATA would otherwise be prepared, and fail only at the end of
 * recovery (research notes §3).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PreconditionError } from '#domain/errors';
import type { Manifest } from '#domain/repository/manifest';
import { formatLsn, parseLsn } from '#domain/wal/lsn';
import { controlStateOf, systemIdentifierOf } from '../postgres/pgdata.ts';

/** A snapshot is taken from a running server in backup mode: a primary, or a standby. */
const snapshotStates = ['in production', 'in archive recovery'];

/** How to put the backup's snapshot at `pgdata`, by provider. */
export function howToPutSnapshot(manifest: Manifest, pgdata: string): string {
  const data = manifest.snapshots.find((s) => (s.role ?? 'data') === 'data') ?? manifest.snapshots[0];
  if (!data) return `backup ${manifest.backupId} records no snapshot; it cannot be restored`;
  switch (data.provider) {
    case 'copy':
      return (
        `give --from-snapshot (with a new or empty ${pgdata}), and pgsnap restore copies its snapshot there; ` +
        `or copy it yourself first: cp -a ${data.snapshotId}/. ${pgdata} (as root, into an empty directory)`
      );
    case 'btrfs':
      return (
        `give --from-snapshot (with a new or empty ${pgdata}), and pgsnap restore puts its snapshot there; or ` +
        `yourself first: btrfs subvolume snapshot ${data.snapshotId} ${pgdata} (${pgdata} must not exist yet)`
      );
    default:
      return (
        `create volumes from its snapshots (${manifest.snapshots.map((s) => s.snapshotId).join(', ')}) and mount ` +
        `the data volume at ${pgdata} first: pgsnap mount, or pgsnap restore start does both`
      );
  }
}

/** Refuses `pgdata` unless it holds backup `manifest.backupId`'s snapshot, untouched since. */
export function requireBackupSnapshot(pgdata: string, manifest: Manifest): void {
  const not = `${pgdata} does not hold the snapshot of backup ${manifest.backupId}`;
  const how = howToPutSnapshot(manifest, pgdata);
  if (!existsSync(join(pgdata, 'global', 'pg_control'))) {
    throw new PreconditionError(`${not} (it has no global/pg_control): ${how}`);
  }
  const found = systemIdentifierOf(pgdata);
  if (found !== manifest.systemIdentifier) {
    throw new PreconditionError(
      `${not}: it holds the cluster with system identifier ${found}, but backup ${manifest.backupId} was ` +
        `taken of ${manifest.cluster} (system identifier ${manifest.systemIdentifier}). ${how}`,
    );
  }
  const { state, checkpointLsn } = controlStateOf(pgdata);
  const start = parseLsn(manifest.startLsn);
  const stop = manifest.stopLsn ? parseLsn(manifest.stopLsn) : undefined;
  const checkpoint = formatLsn(checkpointLsn);
  if (stop !== undefined && checkpointLsn > stop) {
    throw new PreconditionError(
      `${not}: its pg_control's latest checkpoint ${checkpoint} is after the backup's stop ` +
        `(${manifest.stopLsn}), so a server ran on it since the snapshot (the live data directory, or a ` +
        `restore that already ran; pg_control says "${state}"). ${how}`,
    );
  }
  if (checkpointLsn < start) {
    throw new PreconditionError(
      `${not}: its pg_control's latest checkpoint ${checkpoint} is before the backup's start ` +
        `(${manifest.startLsn}), so it was taken before the backup began. ${how}`,
    );
  }
  if (!snapshotStates.includes(state)) {
    throw new PreconditionError(
      `${not}: its pg_control says "${state}", and a snapshot taken in backup mode says "in production" ` +
        `(or "in archive recovery" on a standby): it is a copy of a stopped server. ${how}`,
    );
  }
}
