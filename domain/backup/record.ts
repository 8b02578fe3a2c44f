/**
 * What the state machine writes into a backup's manifest (the agent writes
 * `started` at begin and `stopped` at end): the snapshot ids as soon as they
 * exist, so nothing can be orphaned unnoticed; `completed` once every snapshot
 * is; `failed` with the reason when the backup is given up.
 */

import type { SnapshotOfSet } from '../ebs/snapshots.ts';
import { ManifestStateError } from '../errors.ts';
import type { BackupState, Manifest } from '../repository/manifest.ts';
import type { Repository } from '../repository/repository.ts';

async function manifestOf(repository: Repository, backupId: string, step: string): Promise<Manifest> {
  const manifest = await repository.readManifest(backupId);
  if (!manifest) {
    throw new ManifestStateError(
      `${step}: backup ${backupId} has no manifest in ${repository.url}; pgsnap begin on the host writes it ` +
        'when it uses the same repository (--repo or PGSNAP_REPO): check the agent installation',
    );
  }
  return manifest;
}

function refuse(manifest: Manifest, step: string, allowed: string[]): never {
  throw new ManifestStateError(
    `${step}: the manifest of backup ${manifest.backupId} is ${manifest.state}` +
      `${manifest.failure ? ` (${manifest.failure.reason})` : ''}, not ${allowed.join(' or ')}`,
  );
}

const ebs = (snapshots: SnapshotOfSet[]) =>
  snapshots.map((s) => ({ provider: 'ebs', snapshotId: s.snapshotId, volumeId: s.volumeId, state: s.state }));

/** `started` → `snapshotting`, with the snapshot ids. */
export async function recordSnapshotting(
  repository: Repository,
  request: { backupId: string; snapshots: SnapshotOfSet[] },
): Promise<{ state: BackupState }> {
  const step = 'recording the snapshots';
  const manifest = await manifestOf(repository, request.backupId, step);
  if (manifest.state !== 'started' && manifest.state !== 'snapshotting') {
    refuse(manifest, step, ['started']);
  }
  await repository.writeManifest({
    ...manifest,
    state: 'snapshotting',
    snapshots: ebs(request.snapshots),
    updatedAt: new Date().toISOString(),
  });
  return { state: 'snapshotting' };
}

/**
 * `stopped` (the agent stored the artifacts and the WAL) → `completed`, now
 * that every snapshot is completed.
 */
export async function recordCompleted(
  repository: Repository,
  request: { backupId: string; snapshots: SnapshotOfSet[] },
): Promise<{ state: BackupState }> {
  const step = 'marking the backup completed';
  const manifest = await manifestOf(repository, request.backupId, step);
  if (manifest.state !== 'stopped' && manifest.state !== 'completed') refuse(manifest, step, ['stopped']);
  const now = new Date().toISOString();
  await repository.writeManifest({
    ...manifest,
    state: 'completed',
    snapshots: ebs(request.snapshots.map((s) => ({ ...s, state: 'completed' }))),
    timings: { ...manifest.timings, completedAt: manifest.timings.completedAt ?? now },
    updatedAt: now,
  });
  return { state: 'completed' };
}

/** Any state but `completed` → `failed`, with the reason. A backup that never got a manifest has none to mark. */
export async function recordFailed(
  repository: Repository,
  request: { backupId: string; reason: string },
): Promise<{ state: BackupState | 'none' }> {
  const manifest = await repository.readManifest(request.backupId);
  if (!manifest) return { state: 'none' };
  if (manifest.state === 'completed') refuse(manifest, 'marking the backup failed', ['not completed']);
  const now = new Date().toISOString();
  await repository.writeManifest({
    ...manifest,
    state: 'failed',
    failure: { reason: request.reason, at: now },
    updatedAt: now,
  });
  return { state: 'failed' };
}
