/**
 * Putting a fetched WAL file in place: written beside its destination under a
 * temporary name and renamed, so that no reader ever sees part of it.
 *
 * Written in 1 MiB steps, not in one write of the whole segment: on these
 * machines (Linux, ext4) one 16 MiB write() takes 40 to 90 ms, and sixteen
 * 1 MiB writes of the same bytes 5 to 7 ms (`dd bs=16M` against `bs=1M`
 * shows the same). The prefetcher, which wrote each segment with one
 * writeFileSync, spent more on placing segments than on fetching them, and
 * fell behind a recovery that `cp` feeds (bench/wal-restore).
 */
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';

const step = 1 << 20;

/** Writes `content` to `temporary` (created, mode 0600) and renames it to `path`; nothing is left on failure. */
export function placeFile(temporary: string, path: string, content: Uint8Array): void {
  try {
    const fd = openSync(temporary, 'w', 0o600);
    try {
      for (let written = 0; written < content.byteLength; ) {
        written += writeSync(fd, content, written, Math.min(step, content.byteLength - written));
      }
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}
