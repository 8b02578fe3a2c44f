/**
 * Aborting a backup: the session is closed without artifacts (or a stopped
 * backup's hand-over discarded), waited for until the server has left backup
 * mode, and the catalog told.
 */
import { messageOf, PreconditionError } from '#domain/errors';
import type { Context } from '../host/context.ts';
import type { OutcomeRecord } from '../host/state.ts';
import { recordEnded } from './catalog.ts';
import { answerError, request } from './control.ts';
import { heldBackup, type Inspection, inspect, isHeldHere } from './inspect.ts';

export type AbortResult =
  | { aborted: true; backupId: string; reason: string }
  | {
      aborted: false;
      backupId: string;
      /** What abort found instead, and that it left it as it was. */
      note: string;
      /** The backup in progress here, which is another one. */
      inProgress?: string;
      /** How the backup ended, when it is the last one this host recorded. */
      outcome?: OutcomeRecord;
    };

/**
 * Aborts the backup in progress, or with `backupId` only that one. Discarding
 * a stopped backup's hand-over counts as aborting it.
 */
export async function abort(ctx: Context, reason: string, backupId?: string): Promise<AbortResult> {
  const current = await inspect(ctx.state);
  if (backupId !== undefined) {
    const elsewhere = notInProgress(current, backupId, ctx.state.readOutcome());
    if (elsewhere) return elsewhere;
  }
  if (current.kind === 'stopped') {
    // Backup mode already ended; discarding the hand-over is all that is left to do.
    const { backupId: stoppedId, label, startedAt } = current.stopped;
    ctx.state.writeOutcome({
      backupId: stoppedId,
      label,
      outcome: 'aborted',
      reason,
      at: new Date().toISOString(),
      startedAt,
    });
    ctx.state.clearStopped();
    ctx.state.unlock(stoppedId);
    await catalogAbort(ctx, stoppedId, reason);
    return { aborted: true, backupId: stoppedId, reason };
  }
  if (current.kind !== 'active') {
    throw new PreconditionError('no backup is in progress here; nothing to abort');
  }
  const aborting = current.session.backupId;
  const answer = await request(ctx.state.socketPath, {
    op: 'abort',
    reason,
    ...(backupId !== undefined ? { backupId } : {}),
  });
  if (answer && !answer.ok) {
    // The session refuses another backup's id: it changed since inspect, so look again to say what is there.
    if (backupId !== undefined && answer.error.name === 'PreconditionError')
      return abort(ctx, reason, backupId);
    throw answerError(answer.error);
  }
  // Wait until the holder has closed its session, so that on return the server has left backup mode.
  const deadline = Date.now() + 15_000;
  for (;;) {
    const now = await inspect(ctx.state);
    // A begin right after the abort may already hold the next backup: that one is not waited for.
    if (now.kind !== 'active' || now.session.backupId !== aborting) break;
    if (Date.now() > deadline)
      throw new Error(`the holder (pid ${current.session.holderPid}) did not stop within 15s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await catalogAbort(ctx, aborting, reason);
  return { aborted: true, backupId: aborting, reason };
}

/** What abort of `backupId` reports, touching nothing, when that backup is not the one in progress. */
function notInProgress(
  current: Inspection,
  backupId: string,
  last: OutcomeRecord | undefined,
): AbortResult | undefined {
  const other = heldBackup(current);
  if (isHeldHere(backupId, other)) return undefined;
  const outcome = current.kind === 'lost' ? current.outcome : last;
  const ended =
    outcome?.backupId === backupId
      ? `backup ${backupId} already ended: ${outcome.outcome} at ${outcome.at} (${outcome.reason})`
      : `backup ${backupId} is not in progress here`;
  const note = other
    ? `${ended}; backup ${other.backupId} is (${other.how}), and is left as it is`
    : `${ended}; nothing to abort`;
  return {
    aborted: false,
    backupId,
    note,
    ...(other ? { inProgress: other.backupId } : {}),
    ...(outcome?.backupId === backupId ? { outcome } : {}),
  };
}

/** The abort itself has happened; a catalog that cannot be updated is reported, not fatal. */
async function catalogAbort(ctx: Context, backupId: string, reason: string): Promise<void> {
  if (!ctx.repository || ctx.proposeOnly) return;
  try {
    await recordEnded(ctx.repository, backupId, 'aborted', reason);
  } catch (error) {
    ctx.out.progress(
      `backup ${backupId} aborted, but its manifest still says otherwise: ${messageOf(error)}`,
    );
  }
}
