/**
 * The lifecycle of a backup's manifest: which state may follow which, and what
 * each step writes. The agent (begin, end, abort, run) and the state machine's
 * Lambdas (record-backup) both change a manifest only through `recordStep`
 * (or `applyStep` where the caller writes), so both follow the same rules.
 *
 *     (none) ─begin→ started ─snapshotsTaken→ snapshotting ─stop→ stopped ─snapshotsCompleted→ completed
 *                        └────────────────────────┴─end (snapshots already complete)──────────────→ completed
 *                        └─end (no snapshot recorded)→ stopped, with a note: never completed from end alone
 *     started, snapshotting, stopped ─abort→ aborted ─fail→ failed (and fail from those three directly)
 *
 * A step asked for again once it has happened, or once the backup has gone
 * past it (a Step Functions retry, a second `pgsnap end` after a crash, an
 * abort of a backup that end already marked failed) is a repeat: it succeeds
 * and leaves the manifest as it is, so that the first account of what
 * happened is the one kept. A step that contradicts the state (completing an
 * aborted backup, failing a completed one) is refused with a
 * ManifestStateError that names the state, and the manifest is left as it is.
 * Either way the manifest is never moved backwards.
 */
import { ManifestStateError } from '../errors.ts';
import type { ArtifactRecord, BackupState, Manifest, ManifestSnapshot } from '../repository/manifest.ts';
import type { Repository } from '../repository/repository.ts';

/** Where a manifest can be: one of its states, or not written yet. */
export type LifecycleState = BackupState | 'none';

/** What the agent knows once `pg_backup_stop` returned and the artifacts are stored. */
export interface StopRecord {
  stopLsn: string;
  stopWalFile: string;
  stopTimeline: number;
  wal: { first: string; last: string };
  artifacts: ArtifactRecord[];
  stoppedAt: string;
  archiveWaitMs: number;
}

/** A step with what it writes. */
export type Step =
  /** `pgsnap begin`: the manifest as the holder's session describes it. */
  | { step: 'begin'; manifest: Manifest }
  /** The snapshot ids, as soon as the snapshots exist (state machine or a local provider). */
  | { step: 'snapshotsTaken'; snapshots: ManifestSnapshot[] }
  /**
   * `pgsnap end`: stopped (`stop`, the state machine still waits for the snapshots) or completed
   * (`end`, they are complete already). `begun` is what begin would have written, the base when
   * begin could not catalogue the backup.
   */
  | { step: 'stop' | 'end'; begun: Manifest; stop: StopRecord }
  /** Every snapshot of the set is completed (the state machine's check). */
  | { step: 'snapshotsCompleted'; snapshots: ManifestSnapshot[] }
  | { step: 'fail' | 'abort'; reason: string }
  /** The snapshots of a backup that is given up were deleted with it. */
  | { step: 'snapshotsDeleted'; snapshots: ManifestSnapshot[] }
  /** A local provider's own account of the snapshots (role, path) in place of EC2's view of them. */
  | { step: 'snapshotsDescribed'; snapshots: ManifestSnapshot[] };

export type StepName = Step['step'];

export interface StepRule {
  /** What the step is doing, for messages. */
  doing: (backupId: string) => string;
  /** The states the step moves on from. */
  from: readonly LifecycleState[];
  /** The state it leaves the manifest in; `same`: it amends the manifest and keeps its state. */
  to: BackupState | 'same';
  /** The states in which the step has already happened, or been overtaken: a repeat, ok and unchanged. */
  repeatIn: readonly LifecycleState[];
}

const inProgress = ['started', 'snapshotting', 'stopped'] as const;

/** Every step, and the states it may start from. Any state in neither `from` nor `repeatIn` refuses it. */
export const lifecycle: Readonly<Record<StepName, StepRule>> = {
  // A backupId names one backup: a manifest already there is another begin's (or a reused id).
  begin: { doing: (id) => `recording backup ${id} as started`, from: ['none'], to: 'started', repeatIn: [] },
  // Repeated only with the same snapshot ids: others would orphan the snapshots recorded first.
  snapshotsTaken: {
    doing: (id) => `recording the snapshots of backup ${id}`,
    from: ['started'],
    to: 'snapshotting',
    repeatIn: ['snapshotting', 'stopped', 'completed'],
  },
  // `none`: begin could not reach the repository; end has all begin would have written.
  stop: {
    doing: (id) => `recording the end of backup ${id}`,
    from: ['none', 'started', 'snapshotting'],
    to: 'stopped',
    repeatIn: ['stopped', 'completed'],
  },
  // From `stopped` it is refused: only the check of the snapshots may complete a backup that waits for them.
  end: {
    doing: (id) => `recording the end of backup ${id}`,
    from: ['none', 'started', 'snapshotting'],
    to: 'completed',
    repeatIn: ['completed'],
  },
  snapshotsCompleted: {
    doing: (id) => `marking backup ${id} completed`,
    from: ['stopped'],
    to: 'completed',
    repeatIn: ['completed'],
  },
  // After `aborted` too: the state machine's catch path aborts the session first and then records why
  // the backup failed. A failure repeated keeps the first reason, the cause; later ones are its effects.
  fail: {
    doing: (id) => `marking backup ${id} failed`,
    from: [...inProgress, 'aborted'],
    to: 'failed',
    repeatIn: ['none', 'failed'],
  },
  // A backup that already failed is already given up: aborting it too changes nothing.
  abort: {
    doing: (id) => `marking backup ${id} aborted`,
    from: inProgress,
    to: 'aborted',
    repeatIn: ['none', 'aborted', 'failed'],
  },
  // Never on `completed`: a completed backup loses its snapshots only with its manifest (retention).
  snapshotsDeleted: {
    doing: (id) => `recording the deleted snapshots of backup ${id}`,
    from: [...inProgress, 'aborted', 'failed'],
    to: 'same',
    repeatIn: ['none'],
  },
  snapshotsDescribed: {
    doing: (id) => `recording the local snapshots of backup ${id}`,
    from: ['snapshotting', 'stopped', 'completed'],
    to: 'same',
    repeatIn: [],
  },
};

/** Whether the manifest names a snapshot that was not deleted: without one, nothing can be restored. */
export const hasLiveSnapshots = (manifest: Pick<Manifest, 'snapshots'>): boolean =>
  manifest.snapshots.some((s) => s.state !== 'deleted');

/** The note on a backup that ended with no snapshot recorded. */
export const noSnapshotNote =
  'no snapshot was recorded for this backup, so it is not completed: give the snapshot reference to ' +
  'pgsnap end (--snapshot REF), print pgsnap-snapshot: REF lines from the command of pgsnap run, or let the ' +
  'state machine take the snapshots';

const sameIds = (a: ManifestSnapshot[], b: ManifestSnapshot[]) =>
  JSON.stringify(a.map((s) => s.snapshotId).sort()) === JSON.stringify(b.map((s) => s.snapshotId).sort());

/** The backup a step is for, and the repository its manifest is in (for messages). */
export interface StepTarget {
  backupId: string;
  where: string;
}

function refuse(current: Manifest | undefined, rule: StepRule, target: StepTarget): never {
  const doing = rule.doing(target.backupId);
  if (!current) {
    throw new ManifestStateError(
      `${doing}: there is no manifest in ${target.where}; pgsnap begin on the host writes it when it uses ` +
        'the same repository (--repo or PGSNAP_REPO): check the agent installation',
      { backupId: target.backupId, state: 'none' },
    );
  }
  const allowed = rule.from.filter((s) => s !== 'none');
  const why = current.failure ? ` (${current.failure.reason})` : '';
  throw new ManifestStateError(
    allowed.length > 0
      ? `${doing}: the manifest is ${current.state}${why}, not ${allowed.join(' or ')}`
      : `${doing}: the manifest in ${target.where} is ${current.state}${why} already; a backupId names ` +
          'one backup: begin again with a new one',
    { backupId: target.backupId, state: current.state },
  );
}

export interface StepOutcome {
  /** The manifest after the step; undefined when there is none and the step needs none. */
  manifest: Manifest | undefined;
  /** False for a repeat: nothing to write. */
  changed: boolean;
}

/**
 * Whether `step` may be taken from the manifest as it is: `apply`, `repeat` (ok, nothing to
 * write), or a ManifestStateError that says what state the manifest is in.
 */
export function checkStep(
  current: Manifest | undefined,
  step: Step | Exclude<StepName, 'snapshotsTaken'>,
  target: StepTarget,
): 'apply' | 'repeat' {
  const rule = lifecycle[typeof step === 'string' ? step : step.step];
  const state: LifecycleState = current?.state ?? 'none';
  if (rule.repeatIn.includes(state)) {
    if (
      typeof step !== 'string' &&
      step.step === 'snapshotsTaken' &&
      current &&
      !sameIds(current.snapshots, step.snapshots)
    ) {
      throw new ManifestStateError(
        `${rule.doing(target.backupId)}: the manifest is ${state} with snapshots ` +
          `${current.snapshots.map((s) => s.snapshotId).join(', ') || '(none)'}; recording ` +
          `${step.snapshots.map((s) => s.snapshotId).join(', ')} in their place would orphan them`,
        { backupId: target.backupId, state },
      );
    }
    return 'repeat';
  }
  if (rule.from.includes(state)) return 'apply';
  return refuse(current, rule, target);
}

/** The manifest after `step`, or a ManifestStateError. */
export function applyStep(
  current: Manifest | undefined,
  step: Step,
  target: StepTarget,
  now = new Date().toISOString(),
): StepOutcome {
  if (checkStep(current, step, target) === 'repeat') {
    return { manifest: current, changed: false };
  }
  const rule = lifecycle[step.step];
  switch (step.step) {
    case 'begin':
      return { manifest: { ...step.manifest, state: 'started', updatedAt: now }, changed: true };
    case 'stop':
    case 'end': {
      const base = current ?? step.begun;
      // A backup is completed only with a snapshot set: `end` with none recorded leaves it stopped.
      const snapshotless = step.step === 'end' && !hasLiveSnapshots(base);
      const state = snapshotless ? 'stopped' : (rule.to as BackupState);
      const { stop } = step;
      return {
        manifest: {
          ...base,
          state,
          stopLsn: stop.stopLsn,
          stopWalFile: stop.stopWalFile,
          stopTimeline: stop.stopTimeline,
          wal: stop.wal,
          artifacts: stop.artifacts,
          timings: {
            ...base.timings,
            stoppedAt: stop.stoppedAt,
            archiveWaitMs: Math.round(stop.archiveWaitMs),
            ...(state === 'completed' ? { completedAt: now } : {}),
          },
          ...(snapshotless ? { note: noSnapshotNote } : {}),
          updatedAt: now,
        },
        changed: true,
      };
    }
  }
  // Every other step starts from a manifest: checkStep refused `none` for them or called it a repeat.
  const manifest = current!;
  // EC2's view of a snapshot (id, state) does not carry what its volume was: the record made at creation stays.
  const keepVolumes = (snapshots: ManifestSnapshot[]): ManifestSnapshot[] =>
    snapshots.map((s) => {
      const volume = s.volume ?? manifest.snapshots.find((m) => m.snapshotId === s.snapshotId)?.volume;
      return volume ? { ...s, volume } : s;
    });
  switch (step.step) {
    case 'snapshotsTaken':
    case 'snapshotsDeleted':
    case 'snapshotsDescribed':
      return {
        manifest: {
          ...manifest,
          state: rule.to === 'same' ? manifest.state : rule.to,
          snapshots: keepVolumes(step.snapshots),
          updatedAt: now,
        },
        changed: true,
      };
    case 'snapshotsCompleted':
      if (step.snapshots.length === 0) {
        throw new ManifestStateError(
          `${rule.doing(target.backupId)}: no snapshot was given; nothing to restore`,
          {
            backupId: target.backupId,
            state: manifest.state,
          },
        );
      }
      return {
        manifest: {
          ...manifest,
          state: 'completed',
          snapshots: keepVolumes(step.snapshots).map((s) => ({ ...s, state: 'completed' })),
          timings: { ...manifest.timings, completedAt: manifest.timings.completedAt ?? now },
          updatedAt: now,
        },
        changed: true,
      };
    case 'fail':
    case 'abort':
      return {
        manifest: {
          ...manifest,
          state: rule.to as BackupState,
          failure: { reason: step.reason, at: now },
          updatedAt: now,
        },
        changed: true,
      };
  }
}

/**
 * Reads the backup's manifest, takes `step` and writes the result (nothing for a repeat).
 * Returns the manifest's state afterwards, `none` when there is none.
 */
export async function recordStep(
  repository: Repository,
  backupId: string,
  step: Step,
): Promise<{ state: LifecycleState; changed: boolean; manifest: Manifest | undefined }> {
  const current = await repository.readManifest(backupId);
  const { manifest, changed } = applyStep(current, step, { backupId, where: repository.url });
  if (changed && manifest) await repository.writeManifest(manifest);
  return { state: manifest?.state ?? 'none', changed, manifest };
}
