/**
 * The resident helpers a test's server started through archive_command and
 * restore_command (the pusher of wal-push --async, the prefetcher of
 * wal-fetch --prefetch): stopped by the pid in their pid file before the
 * test removes their spool, so that none writes into a directory being removed.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

function pidFiles(dir: string, depth = 4): string[] {
  let entries: Array<{ name: string; isDirectory(): boolean }>;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return depth > 0 ? pidFiles(path, depth - 1) : [];
    return entry.name === 'archiver.pid' || entry.name === 'prefetcher.pid' ? [path] : [];
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM to every helper with a pid file under `dirs`, then waits (at most 10 s) until they are gone. */
export async function stopWalHelpers(...dirs: string[]): Promise<void> {
  const pids = dirs
    .flatMap((dir) => pidFiles(dir))
    .map((file) => Number(readFileSync(file, 'utf8').trim()))
    .filter((pid) => Number.isInteger(pid) && pid > 0 && alive(pid));
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

/**
 * Waits until the prefetcher of `spool` has logged that it stopped, and
 * returns how many segments it says it prefetched.
 */
export async function prefetchedWhenStopped(spool: string, timeoutMs = 90_000): Promise<number> {
  const log = join(spool, 'prefetcher.log');
  for (const deadline = Date.now() + timeoutMs; ; ) {
    const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
    const stopped = /prefetcher stopped after (\d+) segments prefetched/.exec(text);
    if (stopped) return Number(stopped[1]);
    if (Date.now() > deadline) {
      throw new Error(`the prefetcher of ${spool} did not stop within ${timeoutMs} ms; its log:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
