/**
 * Ending a backup: the holder stops it (or a stop whose hand-over was
 * interrupted is picked up), the WAL up to the stop segment is confirmed
 * archived, and the artifacts are handed over byte for byte, to a directory
 * and to the repository.
 */
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BackupInvalidError, PreconditionError } from '#domain/errors';
import type { Context } from '../host/context.ts';
import { type Outcome, type OutcomeRecord, type StoppedRecord, writeFileDurably } from '../host/state.ts';
import { connect } from '../postgres/client.ts';
import { waitForArchive } from './archive-wait.ts';
import { recordEnded, recordSnapshotReferences, type StoredBackup, storeBackup } from './catalog.ts';
import { answerError, request } from './control.ts';
import { heldBackup, type Inspection, inspect, isHeldHere } from './inspect.ts';

export interface Artifact {
  name: string;
  path?: string;
  /** Where the artifact is in the repository. */
  url?: string;
  sha256: string;
  bytes: number;
  content: string;
}

export interface EndResult {
  backupId: string;
  label: string;
  startLsn: string;
  stopLsn: string;
  startWalFile: string;
  stopWalFile: string;
  timeline: number;
  stopTimeline: number;
  systemIdentifier: string;
  backupFrom: 'primary' | 'standby';
  startedAt: string;
  stoppedAt: string;
  archiveWaitMs: number;
  /** Time spent in pg_backup_start and pg_backup_stop, as the holder saw it. */
  startCallMs?: number;
  stopCallMs: number;
  artifacts: Artifact[];
  /** The backup's catalog entry, when a repository is configured. */
  manifest?: { url: string; state: string };
}

const invalidBecause: Record<Exclude<Outcome, 'completed' | 'failed'>, string> = {
  aborted: 'it was aborted',
  expired: 'it ran past its maximum duration',
  lost: 'its session was lost',
};

/**
 * The error for a backup that can no longer be valid, after marking its
 * manifest failed with the reason, so the catalog never shows it as started.
 * The reason is written as the state machine writes one ("Error: cause"),
 * since this is the first failure recorded and a later one keeps it. A backup
 * that was aborted is recorded as aborted, with the abort's reason: this end
 * did not make it fail, and an abort already recorded stays as it is.
 */
async function invalid(
  ctx: Context,
  backupId: string,
  message: string,
  aborted?: { reason: string },
): Promise<BackupInvalidError> {
  const invalidError = new BackupInvalidError(message);
  if (ctx.repository && !ctx.proposeOnly) {
    const state = aborted ? 'aborted' : 'failed';
    const reason = aborted?.reason ?? `${invalidError.name}: ${message}`;
    await recordEnded(ctx.repository, backupId, state, reason).catch((error: Error) =>
      ctx.out.progress(`the manifest of ${backupId} could not be marked ${state}: ${error.message}`),
    );
  }
  return invalidError;
}

/**
 * Refuses an end of `backupId` when another backup is the one here, before
 * anything is touched: that one goes on, and its manifest stays as it is.
 */
function refuseAnother(current: Inspection, backupId: string, last: OutcomeRecord | undefined): void {
  const held = heldBackup(current);
  if (isHeldHere(backupId, held)) return;
  const other = held?.backupId;
  if (other !== undefined) {
    throw new PreconditionError(
      `backup ${backupId} is not in progress here: backup ${other} is, and is left as it is; ` +
        `pgsnap end --backup-id ${other} ends that one`,
    );
  }
  const outcome = current.kind === 'lost' ? current.outcome : last;
  // The outcome of backupId itself is end's to report, as without --backup-id.
  if (outcome?.backupId === backupId) return;
  throw new PreconditionError(
    `backup ${backupId} is not in progress here; no backup is` +
      (outcome ? ` (the last one here, ${outcome.backupId}, ${outcome.outcome} at ${outcome.at})` : ''),
  );
}

/** Asks the holder to stop the backup, or picks up a stop whose hand-over was interrupted. */
async function stopOrResume(ctx: Context, backupId?: string): Promise<StoppedRecord> {
  const current = await inspect(ctx.state);
  if (backupId !== undefined) refuseAnother(current, backupId, ctx.state.readOutcome());
  switch (current.kind) {
    case 'stopped':
      ctx.out.progress(
        `resuming the end of backup ${current.stopped.backupId}, stopped at ${current.stopped.stopLsn}`,
      );
      return current.stopped;
    case 'lost':
      throw await invalid(
        ctx,
        current.outcome.backupId,
        `backup ${current.outcome.backupId} is not valid: ${current.outcome.reason}. Take a new backup with pgsnap begin.`,
      );
    case 'none': {
      const last = current.outcome;
      if (last?.outcome === 'failed') {
        // A begin that failed never put the server in backup mode: there is nothing to end.
        throw new PreconditionError(
          `no backup is in progress here: the last begin (${last.backupId}) failed at ${last.at}: ${last.reason}`,
        );
      }
      if (last?.outcome === 'completed' && last.backupId === backupId) {
        throw new PreconditionError(
          `backup ${backupId} has already ended: completed at ${last.at} (${last.reason})`,
        );
      }
      if (last && last.outcome !== 'completed') {
        throw await invalid(
          ctx,
          last.backupId,
          `backup ${last.backupId} is not valid: ${invalidBecause[last.outcome]} at ${last.at} (${last.reason}). ` +
            'Take a new backup with pgsnap begin.',
          last.outcome === 'aborted' ? { reason: last.reason } : undefined,
        );
      }
      throw new PreconditionError('no backup is in progress here; start one with pgsnap begin');
    }
    case 'active': {
      const answer = await request(ctx.state.socketPath, {
        op: 'end',
        ...(backupId !== undefined ? { backupId } : {}),
      });
      if (!answer) {
        // The holder went away between the two questions: inspect again to say why.
        return stopOrResume(ctx, backupId);
      }
      if (!answer.ok) {
        // A refusal leaves the backup as it is; any other failure of the stop has cost the backup its validity.
        const error = answerError(answer.error);
        if (error instanceof PreconditionError) throw error;
        throw await invalid(ctx, current.session.backupId, error.message);
      }
      return answer.result as unknown as StoppedRecord;
    }
  }
}

export function artifactsOf(stopped: StoppedRecord): Array<{ name: string; content: string }> {
  const files = [{ name: 'backup_label', content: stopped.labelFile }];
  // An empty tablespace_map must not be written (func.sgml): only when there are tablespaces.
  if (stopped.tablespaceMap !== '') files.push({ name: 'tablespace_map', content: stopped.tablespaceMap });
  if (stopped.historyFileName && stopped.historyFile !== undefined) {
    files.push({ name: stopped.historyFileName, content: stopped.historyFile });
  }
  return files;
}

export async function end(
  ctx: Context,
  options: {
    output?: string;
    archiveTimeoutMs: number;
    snapshotsPending?: boolean;
    backupId?: string;
    /** The snapshots taken of this backup (`--snapshot REF`), recorded before the backup is ended. */
    snapshots?: string[];
  },
): Promise<EndResult> {
  // Connecting for the archive wait overlaps the stop: a connection, and loading pg, cost as much as the stop.
  const connecting = connect().then(
    (client) => ({ client }),
    (error: unknown) => ({ error }),
  );
  let stopped: StoppedRecord;
  try {
    stopped = await stopOrResume(ctx, options.backupId);
  } catch (error) {
    await connecting.then((c) => ('client' in c ? c.client.end() : undefined)).catch(() => {});
    throw error;
  }
  const connected = await connecting;
  if ('error' in connected) throw connected.error;
  const { client } = connected;
  let archiveWaitMs: number;
  try {
    const files = [stopped.stopWalFile];
    if (stopped.historyFileName) files.push(stopped.historyFileName);
    const archiveMode = (await client.query<{ v: string }>("SELECT current_setting('archive_mode') AS v"))
      .rows[0]!.v;
    if (stopped.fromStandby && archiveMode !== 'always') {
      ctx.out.progress(
        `this standby does not archive (archive_mode=${archiveMode}); make sure the primary archives ${stopped.stopWalFile}`,
      );
      archiveWaitMs = 0;
    } else {
      archiveWaitMs = await waitForArchive(client, {
        files,
        timeoutMs: options.archiveTimeoutMs,
        versionNum: stopped.versionNum,
        fromStandby: stopped.fromStandby,
        progress: ctx.out.progress,
      });
    }
  } finally {
    await client.end();
  }

  const outputDir = options.output ? resolve(options.output) : undefined;
  if (outputDir) mkdirSync(outputDir, { recursive: true, mode: 0o700 });
  const artifacts: Artifact[] = artifactsOf(stopped).map(({ name, content }) => {
    const bytes = Buffer.from(content, 'utf8');
    const path = outputDir ? join(outputDir, name) : undefined;
    if (path) writeFileDurably(path, bytes);
    return {
      name,
      ...(path ? { path } : {}),
      sha256: createHash('sha256').update(bytes).digest('hex'),
      bytes: bytes.length,
      content,
    };
  });
  let stored: StoredBackup | undefined;
  if (ctx.repository) {
    if (options.snapshots?.length && !ctx.proposeOnly) {
      await recordSnapshotReferences(ctx.repository, stopped.backupId, options.snapshots);
    }
    stored = await storeBackup(ctx.repository, stopped, artifacts, {
      archiveWaitMs,
      snapshotsPending: options.snapshotsPending ?? false,
      record: !ctx.proposeOnly,
      progress: ctx.out.progress,
    });
    for (const artifact of artifacts) artifact.url = stored.urls[artifact.name];
  }

  // Not fsynced: the artifacts have been handed over, and what a crash could lose here is status's note
  // about the last backup, or (the removal of stopped.json undone) a hand-over that a second end repeats.
  ctx.state.writeOutcome(
    {
      backupId: stopped.backupId,
      label: stopped.label,
      outcome: 'completed',
      reason: `stopped at ${stopped.stopLsn}; WAL through ${stopped.stopWalFile} archived`,
      at: new Date().toISOString(),
      startedAt: stopped.startedAt,
    },
    { durable: false },
  );
  ctx.state.clearStopped();
  ctx.state.unlock(stopped.backupId);
  return {
    backupId: stopped.backupId,
    label: stopped.label,
    startLsn: stopped.startLsn,
    stopLsn: stopped.stopLsn,
    startWalFile: stopped.startWalFile,
    stopWalFile: stopped.stopWalFile,
    timeline: stopped.timeline,
    stopTimeline: stopped.stopTimeline,
    systemIdentifier: stopped.systemIdentifier,
    backupFrom: stopped.fromStandby ? 'standby' : 'primary',
    startedAt: stopped.startedAt,
    stoppedAt: stopped.stoppedAt,
    archiveWaitMs,
    ...(stopped.startCallMs !== undefined ? { startCallMs: stopped.startCallMs } : {}),
    stopCallMs: stopped.stopCallMs,
    artifacts,
    ...(stored ? { manifest: { url: stored.manifestUrl, state: stored.state } } : {}),
  };
}

/** Why a backup ended stopped rather than completed: nothing named a snapshot taken while it ran. */
export function noSnapshotNote(backupId: string): string {
  return (
    `backup ${backupId} is stopped, not completed: no snapshot was named for it, so no restore can use it ` +
    `and retention does not count it. The snapshot command must print "pgsnap-snapshot: REF" for ` +
    'each snapshot it took (pgsnap end takes --snapshot REF)'
  );
}
