/**
 * DR owns DR (DESIGN.md, "Trust"): the DR-side manifest of a backup is
 * written in the DR account, by the DR stack's recorder, from what the DR
 * account sees itself. The source only proposes: its copier puts the source
 * manifest beside the copied artifacts as `source-manifest.json`, once, and
 * may write no manifest in DR (the DR bucket denies it). The recorder checks
 * the proposal against DR facts and writes the manifest DR retention and DR
 * restores act on:
 *
 * - the snapshots are the copies EC2 shows in the DR account and region,
 *   tagged with the backup and the cluster, and their states are EC2's: no
 *   source can make DR retention count a backup `failed` (and delete its
 *   copies) or `completed` without its copies;
 * - a copy is taken only as a copy of a snapshot the proposal names, and the
 *   proposal must be a completed backup of the DR repository's pinned cluster;
 * - the artifacts must be in the DR bucket (write-once) with the digests the
 *   proposal gives.
 */
import type { EC2Client, Snapshot } from '@aws-sdk/client-ec2';
import { ManifestStateError } from '../errors.ts';
import { idStamp } from '../ids.ts';
import type { Manifest, ManifestCopy } from '../repository/manifest.ts';
import { parseManifest } from '../repository/manifest.ts';
import type { Repository } from '../repository/repository.ts';
import { drManifestOf, proposedManifestName, sourceIdOf } from './dr-copies.ts';
import { snapshotsOfBackup, snapshotTags } from './snapshots.ts';

/** What the recorder wrote, or why it wrote nothing. */
export type DrRecord =
  | { recorded: true; backupId: string; state: Manifest['state']; snapshotIds: string[] }
  | { recorded: false; reason: string };

const tagOf = (snapshot: Snapshot, key: string) => snapshot.Tags?.find((t) => t.Key === key)?.Value;

/**
 * Writes the DR-side manifest of `backupId` from DR facts (see the top of
 * this file): `completed` once every snapshot the proposal names has a
 * completed copy, `failed` when a copy is in error, `snapshotting` until
 * then. Throws ManifestStateError while there is no proposal yet (the copies'
 * events can come before it: the caller's retry records later), and when the
 * proposal is not a completed backup of this cluster.
 */
export async function recordDrBackup(
  drEc2: EC2Client,
  dr: Repository,
  request: { backupId: string; account: string; region: string; now?: Date },
): Promise<DrRecord> {
  const { backupId } = request;
  const key = dr.backupKey(backupId, proposedManifestName);
  const bytes = await dr.store.get(key);
  if (!bytes) {
    throw new ManifestStateError(
      `${dr.where(key)} is not there (yet): the source's copy of backup ${backupId} has not proposed its ` +
        'manifest; the DR manifest is recorded when it has',
      { backupId, state: 'none' },
    );
  }
  const proposal = parseManifest(bytes, dr.where(key));
  const pin = await dr.requirePin();
  if (
    proposal.backupId !== backupId ||
    proposal.cluster !== dr.cluster ||
    proposal.systemIdentifier !== pin.systemIdentifier ||
    proposal.state !== 'completed'
  ) {
    throw new ManifestStateError(
      `${dr.where(key)} proposes backup ${proposal.backupId} of ${proposal.cluster} (system identifier ` +
        `${proposal.systemIdentifier}, ${proposal.state}); DR records only a completed backup ${backupId} of ` +
        `${dr.cluster} (system identifier ${pin.systemIdentifier}): nothing recorded`,
      { backupId, state: proposal.state },
    );
  }
  // The artifacts a DR restore reads, as they are in DR: CorruptObjectError when one is missing or differs.
  for (const artifact of proposal.artifacts) await dr.readArtifact(backupId, artifact);

  const proposed = new Set(proposal.snapshots.map((s) => s.snapshotId));
  const found = (await snapshotsOfBackup(drEc2, backupId)).filter(
    (s) => tagOf(s, snapshotTags.cluster) === dr.cluster && proposed.has(sourceIdOf(s) ?? ''),
  );
  if (found.length === 0) return { recorded: false, reason: `no DR copy of backup ${backupId} is there` };
  const copies: ManifestCopy[] = proposal.snapshots.flatMap((s) => {
    // A repeated copy of the same snapshot: the one furthest along counts.
    const of = found
      .filter((c) => sourceIdOf(c) === s.snapshotId)
      .sort((a, b) => rank(b.State) - rank(a.State));
    const copy = of[0];
    if (!copy) return [];
    return [
      {
        account: request.account,
        region: request.region,
        sourceSnapshotId: s.snapshotId,
        snapshotId: copy.SnapshotId!,
        ...(s.volumeId ? { volumeId: s.volumeId } : {}),
        state: copy.State ?? 'pending',
        ...(copy.State === 'error' && copy.StateMessage ? { reason: copy.StateMessage } : {}),
      },
    ];
  });
  const inError = copies.filter((c) => c.state === 'error');
  const state =
    inError.length > 0
      ? 'failed'
      : copies.length === proposal.snapshots.length && copies.every((c) => c.state === 'completed')
        ? 'completed'
        : 'snapshotting';
  const now = (request.now ?? new Date()).toISOString();
  await dr.writeManifest({
    ...drManifestOf(proposal, copies, state),
    ...(state === 'failed'
      ? {
          failure: {
            reason: `DR copy ${inError.map((c) => c.snapshotId).join(', ')} is in state error`,
            at: now,
          },
        }
      : {}),
    updatedAt: now,
  });
  return { recorded: true, backupId, state, snapshotIds: copies.map((c) => c.snapshotId!) };
}

/** What a sweep found to record again: each backup it looked at, with what the recorder did. */
export type DrSweep = Array<{ backupId: string } & DrRecord>;

/**
 * Records again every recent backup of `dr` that has the source's proposal
 * but no final DR manifest (none, or `snapshotting`): EventBridge delivers
 * EBS's copy events at least once but may lose one, and a lost last event
 * would leave a DR backup unrecorded, so DR retention and DR restores would
 * not see it. Only backups whose id is at most `lookBackHours` old are read
 * (a backupId starts with its time), so a sweep's cost does not grow with
 * the retained history. A proposal that cannot be recorded (no copy yet, not
 * a completed backup of this cluster) is reported, not thrown.
 */
export async function sweepDrBackups(
  drEc2: EC2Client,
  dr: Repository,
  request: { account: string; region: string; lookBackHours: number; now?: Date },
): Promise<DrSweep> {
  const now = request.now ?? new Date();
  const since = idStamp(new Date(now.getTime() - request.lookBackHours * 3_600_000));
  const swept: DrSweep = [];
  for (const backupId of await dr.listBackupIds()) {
    if (backupId < since) continue;
    const manifest = await dr.readManifest(backupId);
    if (manifest && manifest.state !== 'snapshotting') continue;
    if (!(await dr.store.get(dr.backupKey(backupId, proposedManifestName)))) continue;
    try {
      swept.push({ backupId, ...(await recordDrBackup(drEc2, dr, { ...request, backupId, now })) });
    } catch (error) {
      if (!(error instanceof ManifestStateError)) throw error;
      swept.push({ backupId, recorded: false, reason: error.message });
    }
  }
  return swept;
}

/** Completed before pending before error: which of two copies of one snapshot to keep. */
function rank(state: string | undefined): number {
  return state === 'completed' ? 2 : state === 'pending' ? 1 : 0;
}
