/**
 * Retention: which backups go, and which WAL no kept backup needs any more.
 *
 * A backup is kept when the policy keeps it (the last N completed, those
 * younger than D days, and/or those a grandfather-father-son thinning keeps,
 * see thinning.ts), and always when it is the newest completed backup, in
 * progress, or has a locked snapshot. Failed and aborted backups older than the
 * newest completed one go. WAL goes when it is older than the start segment of
 * the oldest kept backup; timeline `.history` files always stay, since any
 * later restore may have to follow them. A backup is deleted snapshots first,
 * then its artifacts, then its manifest, so that no manifest ever points at
 * something already gone.
 */
import { UsageError } from '../errors.ts';
import { byStart, type Manifest } from '../repository/manifest.ts';
import type { Repository } from '../repository/repository.ts';
import { parseSegmentName, walFileKind } from '../wal/file.ts';
import { parseBackupLabel } from '../wal/lsn.ts';
import * as z from '../zod.ts';
import { hasLiveSnapshots } from './lifecycle.ts';
import { thin, thinnedCount, thinningKeepsSomething, thinningSchema } from './thinning.ts';

/**
 * A retention policy: the one rule for the CLI's flags, the environment's configuration (infra) and
 * the apply-retention Lambda's environment. At least one rule is needed where a policy is given
 * whole (validatePolicy, the configuration).
 */
export const retentionPolicySchema = z.strictObject({
  /** Keep the last N completed backups. */
  keepLast: z.optional(z.int().check(z.gte(1))),
  /** Keep the completed backups younger than D days. */
  keepDays: z.optional(z.number().check(z.positive())),
  /** Keep one backup per hour, day, week and month for so many of each (grandfather-father-son). */
  thin: z.optional(thinningSchema),
});
export type RetentionPolicy = z.infer<typeof retentionPolicySchema>;

export type KeepReason =
  | 'policy'
  | 'newest completed'
  | 'in progress'
  | 'locked snapshot'
  | 'recent failure'
  | 'unverified';

export interface RetentionPlan {
  keep: Array<{ backupId: string; state: Manifest['state']; reason: KeepReason }>;
  remove: Array<{ backupId: string; state: Manifest['state'] }>;
  /** WAL file names (without the compression extension) that no kept backup needs. */
  removeWal: string[];
  /** The oldest segment still needed, if any backup needs WAL. */
  walFrom?: string;
}

const inProgress: ReadonlyArray<Manifest['state']> = ['started', 'snapshotting', 'stopped'];

const flagRules: Record<keyof RetentionPolicy, string> = {
  keepLast: '--keep-last must be a whole number of at least 1',
  keepDays: '--keep-days must be more than 0',
  thin: '--thin takes H,D,W,M: whole numbers of hours, days, weeks and months, 0 or more',
};

/** Whether a policy names at least one rule that keeps backups. */
export function policyKeepsSomething(policy: RetentionPolicy): boolean {
  return (
    policy.keepLast !== undefined || policy.keepDays !== undefined || thinningKeepsSomething(policy.thin)
  );
}

export function validatePolicy(policy: RetentionPolicy): RetentionPolicy {
  if (!policyKeepsSomething(policy)) {
    throw new UsageError('retention needs --keep-last N, --keep-days D and/or --thin H,D,W,M');
  }
  const parsed = retentionPolicySchema.safeParse(policy);
  if (!parsed.success) {
    const field = parsed.error.issues[0]?.path[0] as keyof RetentionPolicy;
    throw new UsageError(`${flagRules[field]}; got ${JSON.stringify(policy[field])}`);
  }
  return parsed.data;
}

function walCut(
  kept: Manifest[],
  walFiles: string[],
  segmentSize: number,
): Pick<RetentionPlan, 'removeWal' | 'walFrom'> {
  const needing = kept.filter((m) => m.state === 'completed' || inProgress.includes(m.state));
  if (needing.length === 0) return { removeWal: [] };
  const oldest = needing.reduce((a, b) =>
    parseSegmentName(a.startWalFile, segmentSize).segno <= parseSegmentName(b.startWalFile, segmentSize).segno
      ? a
      : b,
  );
  const from = parseSegmentName(oldest.startWalFile, segmentSize).segno;
  const removeWal = walFiles.filter((name) => {
    const kind = walFileKind(name);
    if (kind === undefined || kind === 'history') return false;
    // Segments, .partial files and backup history files are named after a segment: older than the cut, they go.
    return parseSegmentName(name.slice(0, 24), segmentSize).segno < from;
  });
  return { removeWal, walFrom: oldest.startWalFile };
}

export function planRetention(input: {
  backups: Manifest[];
  walFiles: string[];
  policy: RetentionPolicy;
  now: Date;
  /** backupIds whose snapshots are locked against deletion. */
  locked?: ReadonlySet<string>;
  /**
   * backupIds whose manifest the snapshots contradict (see applyRetention's
   * `verify`): kept, and not counted as completed, so that a forged manifest
   * can neither be deleted with what it names nor push real backups out.
   */
  unverified?: ReadonlySet<string>;
}): RetentionPlan {
  const policy = validatePolicy(input.policy);
  const backups = [...input.backups].sort(byStart);
  const completed = backups.filter((m) => m.state === 'completed' && !input.unverified?.has(m.backupId));
  const newest = completed.at(-1);
  const byPolicy = new Set<string>();
  if (policy.keepLast !== undefined)
    for (const m of completed.slice(-policy.keepLast)) byPolicy.add(m.backupId);
  if (policy.keepDays !== undefined) {
    const limit = input.now.getTime() - policy.keepDays * 86_400_000;
    for (const m of completed) if (Date.parse(m.timings.startedAt) >= limit) byPolicy.add(m.backupId);
  }
  if (policy.thin) {
    const dated = completed.map((m) => ({ backupId: m.backupId, startedAt: m.timings.startedAt }));
    for (const backupId of thin(dated, policy.thin, input.now).keys()) byPolicy.add(backupId);
  }
  const keep: RetentionPlan['keep'] = [];
  const remove: RetentionPlan['remove'] = [];
  for (const m of backups) {
    const reason: KeepReason | undefined = input.unverified?.has(m.backupId)
      ? 'unverified'
      : input.locked?.has(m.backupId)
        ? 'locked snapshot'
        : m.backupId === newest?.backupId
          ? 'newest completed'
          : inProgress.includes(m.state)
            ? 'in progress'
            : byPolicy.has(m.backupId)
              ? 'policy'
              : m.state !== 'completed' && (!newest || backups.indexOf(m) > backups.indexOf(newest))
                ? 'recent failure'
                : undefined;
    if (reason) keep.push({ backupId: m.backupId, state: m.state, reason });
    else remove.push({ backupId: m.backupId, state: m.state });
  }
  // The cut follows the backups counted (verified); an unverified manifest is kept but never moves it.
  const keptManifests = backups.filter(
    (m) => keep.some((k) => k.backupId === m.backupId) && !input.unverified?.has(m.backupId),
  );
  // Nothing completed yet: no backup can be restored, so no WAL can be said to be unneeded.
  if (!newest) return { keep, remove, removeWal: [] };
  const segmentSize = newest.walSegmentSize;
  return { keep, remove, ...walCut(keptManifests, input.walFiles, segmentSize) };
}

/**
 * The most completed backups a policy keeps for a cluster backed up every
 * `everyHours` hours (an upper bound: the rules' sets may overlap), the newest
 * completed one included. What the snapshot-quota projections multiply by.
 */
export function projectedBackups(policy: RetentionPolicy, everyHours: number): number {
  let count = 1;
  if (policy.keepLast !== undefined) count += policy.keepLast;
  if (policy.keepDays !== undefined) count += Math.ceil((policy.keepDays * 24) / everyHours) + 1;
  if (policy.thin) count += thinnedCount(policy.thin, everyHours);
  return count;
}

/**
 * Deletes a backup's snapshots; names the ones that are locked, and those it
 * refused to delete because they are not the backup's (both stay, and keep
 * the backup).
 */
export type SnapshotDeleter = (manifest: Manifest) => Promise<{ locked: string[]; refused?: string[] }>;

/**
 * Checks the manifests against what the snapshot provider itself records;
 * returns, by backupId, why a manifest cannot be trusted.
 */
export type ManifestVerifier = (manifests: Manifest[]) => Promise<ReadonlyMap<string, string>>;

export interface RetentionResult extends RetentionPlan {
  lockedSnapshots: Array<{ backupId: string; snapshotIds: string[] }>;
  /** Backups kept because their snapshots contradict their manifest: for an operator to look at. */
  unverified: Array<{ backupId: string; reason: string }>;
}

/** Applies the policy to one repository; with `dryRun`, only says what would go. */
export async function applyRetention(
  repository: Repository,
  options: {
    policy: RetentionPolicy;
    now?: Date;
    dryRun: boolean;
    deleteSnapshots: SnapshotDeleter;
    /** Manifests are written by the host; where the snapshots can say otherwise, they are checked. */
    verify?: ManifestVerifier;
    progress?: (message: string) => void;
  },
): Promise<RetentionResult> {
  const backups: Manifest[] = [];
  for (const backupId of await repository.listBackupIds()) {
    const manifest = await repository.readManifest(backupId);
    if (manifest) backups.push(manifest);
  }
  const problems = new Map(options.verify ? await options.verify(backups) : []);
  // Never counted without a snapshot: a completed manifest that names none is not one the orchestrator wrote.
  for (const m of backups) {
    if (m.state === 'completed' && !hasLiveSnapshots(m) && !problems.has(m.backupId))
      problems.set(m.backupId, 'its manifest says completed but names no snapshot');
  }
  // The WAL cut follows the kept backups' start: each completed one's start is read from its backup_label,
  // which is write-once, not taken from the manifest alone (a forged start would cut the WAL a backup needs).
  for (const m of backups) {
    if (m.state !== 'completed' || problems.has(m.backupId)) continue;
    const reason = await startDisagreement(repository, m);
    if (reason) problems.set(m.backupId, reason);
  }
  // A manifest of another cluster under this cluster's prefix is not this cluster's backup.
  for (const m of backups) {
    if (m.cluster !== repository.cluster && !problems.has(m.backupId))
      problems.set(m.backupId, `its manifest names cluster ${m.cluster}, not ${repository.cluster}`);
  }
  const unverifiedIds = new Set(problems.keys());
  const unverified = [...problems].map(([backupId, reason]) => ({ backupId, reason }));
  for (const { backupId, reason } of unverified)
    options.progress?.(`backup ${backupId} stays and is not counted: ${reason}`);
  const wal = await repository.listWal();
  const plan = planRetention({
    backups,
    walFiles: wal.map((w) => w.name),
    policy: options.policy,
    now: options.now ?? new Date(),
    unverified: unverifiedIds,
  });
  if (options.dryRun) return { ...plan, lockedSnapshots: [], unverified };

  const lockedSnapshots: RetentionResult['lockedSnapshots'] = [];
  const locked = new Set<string>();
  for (const { backupId } of plan.remove) {
    const manifest = backups.find((m) => m.backupId === backupId)!;
    const result = await options.deleteSnapshots(manifest);
    if (result.refused && result.refused.length > 0) {
      const reason = `snapshot(s) ${result.refused.join(', ')} are not tagged as this backup's; nothing of them was deleted`;
      unverified.push({ backupId, reason });
      unverifiedIds.add(backupId);
      locked.add(backupId);
      options.progress?.(`backup ${backupId} stays: ${reason}`);
      continue;
    }
    if (result.locked.length > 0) {
      // Reported, not an error: a locked snapshot is someone's deliberate protection.
      lockedSnapshots.push({ backupId, snapshotIds: result.locked });
      locked.add(backupId);
      options.progress?.(`backup ${backupId} stays: snapshot(s) ${result.locked.join(', ')} are locked`);
      continue;
    }
    await repository.deleteBackup(manifest);
    options.progress?.(`deleted backup ${backupId} (${manifest.state})`);
  }
  // Locked backups are kept, and so is the WAL they need: plan again with them.
  const final = planRetention({
    backups: backups.filter(
      (m) => !plan.remove.some((r) => r.backupId === m.backupId) || locked.has(m.backupId),
    ),
    walFiles: wal.map((w) => w.name),
    policy: options.policy,
    now: options.now ?? new Date(),
    locked,
    unverified: unverifiedIds,
  });
  for (const name of final.removeWal) await repository.deleteWal(wal.find((w) => w.name === name)!.key);
  if (final.removeWal.length > 0)
    options.progress?.(`deleted ${final.removeWal.length} WAL file(s) before ${final.walFrom}`);
  return {
    keep: final.keep,
    remove: plan.remove.filter((r) => !locked.has(r.backupId)),
    removeWal: final.removeWal,
    ...(final.walFrom ? { walFrom: final.walFrom } : {}),
    lockedSnapshots,
    unverified,
  };
}

/**
 * Why a completed manifest's start WAL file is not to be believed: its stored
 * backup_label (written once, by the backup itself) names another, or is not
 * there. Undefined when they agree.
 */
async function startDisagreement(repository: Repository, manifest: Manifest): Promise<string | undefined> {
  const label = await repository.store.get(repository.backupKey(manifest.backupId, 'backup_label'));
  if (!label) return 'its manifest says completed but the repository has no backup_label for it';
  let start: string;
  try {
    start = parseBackupLabel(label.toString('utf8')).startWalFile;
  } catch (error) {
    return `its backup_label cannot be read (${(error as Error).message})`;
  }
  if (start !== manifest.startWalFile) {
    return `its manifest starts at WAL ${manifest.startWalFile}, its backup_label at ${start}`;
  }
  return undefined;
}
