/**
 * Background helpers of wal-push --async and wal-fetch --prefetch: a private
 * spool directory, a pid file that admits one helper at a time, and a detached
 * start, so the helper outlives the archive_command or restore_command that
 * started it and PostgreSQL never waits for it.
 */
import { spawn } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createLockFile } from '../host/lock-file.ts';
import { selfSpawn } from '../host/self.ts';

/** The pid files of the two helpers, in their spool directories. */
export const archiverLockName = 'archiver.pid';
export const prefetcherLockName = 'prefetcher.pid';

export { privateDirectory } from '../host/private-dir.ts';

export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    // EPERM: a process of another user, so not our helper (ours run as us): a pid file holding 1, or a pid
    // reused since, must not pass for a live helper, which would stop archiving until pg_wal fills.
    return false;
  }
}

/** Whether the server of `pgdata` runs: a helper of a server that is gone has nothing left to do. */
export function postmasterAlive(pgdata: string): boolean {
  try {
    return isAlive(Number(readFileSync(join(pgdata, 'postmaster.pid'), 'utf8').split('\n')[0]));
  } catch {
    return false;
  }
}

function readPid(path: string): number | undefined {
  try {
    return Number(readFileSync(path, 'utf8').trim());
  } catch {
    return undefined;
  }
}

/** Whether a live process holds the pid file. */
export function lockHolder(path: string): number | undefined {
  const pid = readPid(path);
  return pid !== undefined && isAlive(pid) ? pid : undefined;
}

/** Takes the pid file for this process; false when a live process holds it. A stale one is replaced. */
export function takePidLock(path: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    if (createLockFile(path, `${process.pid}\n`)) return true;
    if (lockHolder(path) !== undefined) return false;
    rmSync(path, { force: true });
  }
  return false;
}

export function releasePidLock(path: string): void {
  if (readPid(path) === process.pid) rmSync(path, { force: true });
}

/**
 * Why nothing can be written in `spool` (ENOSPC, EDQUOT, EROFS), or undefined
 * when a page can. A full spool stops the helper from writing its status and
 * pid files; the asker must report that rather than wait for an answer that
 * cannot come.
 */
export function spoolFull(spool: string): string | undefined {
  const probe = join(spool, `.space-probe-${process.pid}`);
  try {
    writeFileSync(probe, Buffer.alloc(4096), { mode: 0o600 });
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EROFS') {
      return `the spool ${spool} has no room (${code}): free space on its file system or give wal-push --spool-dir on another`;
    }
    throw error;
  } finally {
    rmSync(probe, { force: true });
  }
}

/** Starts `pgsnap <hidden command> <config>` detached, logging to `log`, and does not wait for it. */
export function spawnDaemon(
  command: string,
  config: object,
  options: { cwd: string; log: string; env?: Record<string, string> },
): void {
  const log = openLog(options.log);
  const child = spawn(...selfSpawn([command, JSON.stringify(config)]), {
    detached: true,
    stdio: ['ignore', log, log],
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
  });
  closeSync(log);
  child.unref();
}

/** A log in a private spool, appended to, never through a link (O_NOFOLLOW). */
function openLog(path: string): number {
  return openSync(
    path,
    constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW,
    0o600,
  );
}

let logFd: number | undefined;

/**
 * From now on daemonLog appends to `path` instead of stderr: for a
 * restore_command that stays on as the prefetcher (wal-fetch --stay), whose
 * stderr is the server log.
 */
export function logTo(path: string): void {
  logFd = openLog(path);
}

export function daemonLog(message: string): void {
  const line = `${new Date().toISOString()} [${process.pid}] ${message}\n`;
  if (logFd === undefined) process.stderr.write(line);
  else writeSync(logFd, line);
}
