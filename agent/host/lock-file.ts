/**
 * Lock files that a reader never sees half-written. Created with O_EXCL and
 * then written, a lock is empty for a moment, and a rival that reads it then
 * takes it for one left by a crash and removes it: both go on. Two begins
 * racing did exactly that (CI, 2026-11-21). Written whole under a name of its
 * own and then linked into place instead, the lock appears with its content;
 * link(2), like O_EXCL, fails when the name is taken.
 */
import { linkSync, rmSync, writeFileSync } from 'node:fs';

/** Creates `path` holding `content` (mode 0600); false when it already exists. */
export function createLockFile(path: string, content: string): boolean {
  const temporary = `${path}.new-${process.pid}`;
  try {
    // Inside the try: a write that fails half-way (ENOSPC on a full spool) leaves a file to remove too.
    writeFileSync(temporary, content, { mode: 0o600 });
    linkSync(temporary, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    rmSync(temporary, { force: true });
  }
}
