/**
 * What the local state says about the cluster's backup, reconciled with
 * reality: a holder that no longer answers is dead, and PostgreSQL aborted its
 * backup when the session closed.
 */
import { readFileSync } from 'node:fs';
import type { ClusterState, OutcomeRecord, SessionRecord, StoppedRecord } from '../host/state.ts';
import { request } from './control.ts';

export type Inspection =
  | { kind: 'none'; outcome: OutcomeRecord | undefined }
  | { kind: 'active'; session: SessionRecord & { elapsedMs: number } }
  | { kind: 'stopped'; stopped: StoppedRecord }
  | { kind: 'lost'; outcome: OutcomeRecord };

/** The backup held here: in a session, or stopped with its artifacts not yet handed over. */
export interface HeldBackup {
  backupId: string;
  /** Its state, in words: `in-backup`, `stopping`, or stopped and waiting for end. */
  how: string;
}

export function heldBackup(current: Inspection): HeldBackup | undefined {
  if (current.kind === 'active') return { backupId: current.session.backupId, how: current.session.state };
  if (current.kind === 'stopped') {
    return { backupId: current.stopped.backupId, how: 'stopped, its artifacts not yet handed over' };
  }
  return undefined;
}

/**
 * Whether a request naming `asked` (or no backup: whichever is held) is about
 * the backup held here. end, abort and the session itself refuse one that is
 * not, leaving the held backup as it is.
 */
export function isHeldHere(asked: string | undefined, held: { backupId: string } | undefined): boolean {
  return held !== undefined && (asked === undefined || asked === held.backupId);
}

export async function inspect(state: ClusterState): Promise<Inspection> {
  const live = await request(state.socketPath, { op: 'status' });
  if (live?.ok)
    return { kind: 'active', session: live.result as unknown as SessionRecord & { elapsedMs: number } };

  const stopped = state.readStopped();
  if (stopped) return { kind: 'stopped', stopped };

  const session = state.readSession();
  const lock = state.readLock();
  // Between `begin` taking the lock and the holder listening, only the processes' pids tell that it is alive.
  const startingPid = [session?.holderPid, lock?.pid].find((pid) => pid !== undefined && isAlive(pid));
  if (startingPid !== undefined) {
    const startedAt = session?.startedAt ?? new Date().toISOString();
    return {
      kind: 'active',
      session: {
        ...(session ?? {
          backupId: lock!.backupId,
          label: '',
          fast: false,
          holderPid: startingPid,
          startedAt,
          maxDurationMs: 0,
          expiresAt: startedAt,
        }),
        state: 'starting',
        elapsedMs: Date.now() - Date.parse(startedAt),
      },
    };
  }
  if (session || lock) {
    // Nobody answers on the socket, yet a backup was recorded: its holder was killed.
    const backupId = session?.backupId ?? lock?.backupId ?? 'unknown';
    const outcome: OutcomeRecord = {
      backupId,
      label: session?.label ?? '',
      outcome: 'lost',
      reason:
        `${session?.heldBy === 'agent' ? 'the agent service' : 'the holder'}${session ? ` (pid ${session.holderPid})` : ''} ` +
        'ended without stopping the backup (killed?); PostgreSQL aborted the backup when its session closed',
      at: new Date().toISOString(),
      ...(session ? { startedAt: session.startedAt } : {}),
    };
    state.writeOutcome(outcome);
    state.clearSession();
    // Only the lock seen dead: a begin that took a new one since then is alive.
    if (lock) state.unlock(lock.backupId);
    return { kind: 'lost', outcome };
  }
  return { kind: 'none', outcome: state.readOutcome() };
}

function isAlive(pid: number): boolean {
  // kill(0) and kill(-1) would address process groups, not a process.
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !isZombie(pid);
}

/**
 * A killed holder is re-parented to PID 1 once begin has exited, and stays a
 * zombie, which kill(0) still finds, until PID 1 reaps it: in a container whose
 * PID 1 is not an init, that is never. proc(5): state is the field after the
 * parenthesised command name.
 */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    // No procfs (not Linux): kill(0) is all there is to go on.
    return false;
  }
}
