/**
 * The process a backup belongs to: the `pgsnap run` that began it and will end
 * it. A run killed with SIGKILL cannot abort its backup; the session, which
 * outlives it (a holder in a session of its own, or the agent service),
 * watches it instead and aborts once it is gone, so that the server does not
 * stay in backup mode until the maximum duration and the snapshot command
 * does not go on copying a backup nobody will end.
 */
import { readFileSync } from 'node:fs';

/** A process, told apart from a later one with its pid by its start time (/proc/PID/stat field 22). */
export interface ProcessIdentity {
  pid: number;
  startTime: string | undefined;
}

function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function identify(pid: number): ProcessIdentity {
  return { pid, startTime: startTimeOf(pid) };
}

/** Whether that very process still runs (a zombie counts as gone). */
export function stillRunning(owner: ProcessIdentity): boolean {
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    // EPERM: it runs as another user (the agent service watches runs of any user).
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  let state: string | undefined;
  try {
    const stat = readFileSync(`/proc/${owner.pid}/stat`, 'utf8');
    state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return owner.startTime === undefined;
  }
  if (state === 'Z' || state === 'X') return false;
  return owner.startTime === undefined || startTimeOf(owner.pid) === owner.startTime;
}

/**
 * Stops a snapshot command's whole process group: SIGTERM, then SIGKILL for
 * whatever is left after `graceMs`. Resolves once the group is gone or killed.
 */
export async function stopProcessGroup(group: number, graceMs = 5_000): Promise<void> {
  const alive = () => {
    try {
      process.kill(-group, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  try {
    process.kill(-group, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (alive() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  if (alive()) {
    try {
      process.kill(-group, 'SIGKILL');
    } catch {}
  }
}
