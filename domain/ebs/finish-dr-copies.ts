/**
 * How the DR copies of a backup end: locked when completed, recorded as
 * failed otherwise (never deleted from the source account: DR retention, in
 * the DR account, deletes them), the sharing and grants taken back, and the
 * source manifest written. The DR-side manifest is the DR stack's to record
 * (record-dr-backup.ts).
 */
import { type EC2Client, LockSnapshotCommand } from '@aws-sdk/client-ec2';
import { ManifestStateError } from '../errors.ts';
import type { ManifestCopy } from '../repository/manifest.ts';
import type { Repository } from '../repository/repository.ts';
import { type DrCopySet, sourceIdOf } from './dr-copies.ts';
import { type SourceClients, unshare } from './dr-sharing.ts';
import { type DrTarget, isCrossAccount } from './dr-target.ts';
import { type SnapshotOfSet, snapshotsOfBackup } from './snapshots.ts';

export type CopyOutcome = { outcome: 'completed' } | { outcome: 'failed'; reason: string };

/** How a backup's DR copies ended, with what the copies were of. */
export type EndedCopies = {
  target: DrTarget;
  backupId: string;
  /** The source snapshots. */
  snapshots: SnapshotOfSet[];
  /** The copies, when they were started. */
  copySet?: DrCopySet;
} & CopyOutcome;

/**
 * Locks completed copies; for failed ones, finds every copy of the backup in
 * the DR region by its tags (also those a step that never returned started)
 * and records them as failed. They are not deleted here: no principal of the
 * source account may delete in DR. DR retention, which runs in the DR
 * account, deletes them with the failed DR-side manifest that names them.
 */
async function settleCopies(drEc2: EC2Client, request: EndedCopies): Promise<ManifestCopy[]> {
  const { target, backupId } = request;
  if (request.outcome === 'completed') {
    if (!request.copySet) throw new Error('completed copies need the copy set');
    const copies = request.copySet.copies.map((c) => ({ ...c, state: 'completed' }));
    // Locked copies cannot be deleted, in the DR account either, until the lock expires.
    const lock = target.snapshotLock;
    if (lock) {
      for (const copy of copies) {
        if (!copy.snapshotId) continue;
        await drEc2.send(
          new LockSnapshotCommand({
            SnapshotId: copy.snapshotId,
            LockMode: lock.mode,
            LockDuration: lock.days,
          }),
        );
      }
    }
    return copies;
  }
  const made = await snapshotsOfBackup(drEc2, backupId);
  return request.snapshots.map((s) => {
    const snapshotId =
      request.copySet?.copies.find((c) => c.sourceSnapshotId === s.snapshotId)?.snapshotId ??
      made.find((m) => sourceIdOf(m) === s.snapshotId)?.SnapshotId;
    return {
      account: target.account,
      region: target.region,
      sourceSnapshotId: s.snapshotId,
      ...(snapshotId ? { snapshotId } : {}),
      volumeId: s.volumeId,
      state: 'failed',
      reason: request.reason,
    };
  });
}

/**
 * Records how the copies ended: takes back the sharing and the grants
 * first, then writes the source manifest (which stays completed). On failure
 * it names every copy of the backup found in the DR region by its tags, also
 * when the step that started them never returned. In DR, the recorder of the
 * DR stack writes the DR-side manifest from the copies' own states (a copy in
 * error makes it failed, for DR retention to delete): the source account may
 * neither delete nor record there.
 */
export async function finishDrCopies(
  clients: { source: SourceClients; drEc2: EC2Client },
  repositories: { source: Repository },
  request: EndedCopies,
): Promise<{ copies: ManifestCopy[] }> {
  const { target, backupId } = request;
  const now = new Date().toISOString();
  let copies: ManifestCopy[];
  // The sharing and the grants are taken back whatever happens here (a lock or a delete refused), and
  // before any manifest is rewritten: a failure past this point never leaves the source snapshots
  // readable by the DR account.
  try {
    copies = await settleCopies(clients.drEc2, request);
  } finally {
    if (isCrossAccount(target)) await unshare(clients.source, target, backupId, request.snapshots);
  }

  const manifest = await repositories.source.readManifest(backupId);
  if (!manifest) {
    throw new ManifestStateError(`backup ${backupId} has no manifest in ${repositories.source.url}`);
  }
  // The source's manifest only: the DR-side one is the DR stack's to record, from DR facts (record-dr-backup.ts).
  await repositories.source.writeManifest({ ...manifest, copies, updatedAt: now });
  return { copies };
}
