/**
 * The agent's state and the WAL helpers' spools: directories that only the
 * user pgsnap runs as may write. Another local user who could write there
 * could plant a pid file that passes for a live helper (archiving stops until
 * pg_wal fills), a link where a log is appended, or a segment that is moved
 * into pg_wal (WAL injection). So the directory is made, or found, as a real
 * directory (not a link) of ours with mode 0700, on a path that no other
 * user can rename: every directory above it is root's or ours (root may also
 * use another user's), and writable by others only with the sticky bit
 * (/tmp). Anything else is refused, saying what to do.
 */
import { lstatSync, mkdirSync, realpathSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { PreconditionError } from '#domain/errors';

const sticky = 0o1000;

function refuse(path: string, why: string, fix: string): never {
  throw new PreconditionError(
    `${path} ${why}; pgsnap keeps its state and WAL spools only where no other user can write. ${fix}`,
  );
}

/** Makes (or checks) `path` as a private directory of ours; returns it. */
export function privateDirectory(path: string): string {
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  mkdirSync(path, { recursive: true, mode: 0o700 });
  const stat = lstatSync(path);
  if (uid === undefined) return path; // not POSIX: no owners to check
  if (stat.isSymbolicLink()) refuse(path, 'is a symbolic link', `Remove it, or give a directory of your own`);
  if (!stat.isDirectory()) refuse(path, 'is not a directory', 'Remove it');
  if (stat.uid !== uid) {
    refuse(
      path,
      `belongs to uid ${stat.uid}, not to us (uid ${uid})`,
      'Someone else may have made it first: remove it, or choose another directory (PGSNAP_STATE_DIR, --spool-dir)',
    );
  }
  if ((stat.mode & 0o077) !== 0) {
    refuse(path, `is open to others (mode ${(stat.mode & 0o777).toString(8)})`, `Run chmod 700 ${path}`);
  }
  for (let dir = dirname(realpathSync(path)); ; dir = dirname(dir)) {
    const above = lstatSync(dir);
    const othersWrite = (above.mode & 0o002) !== 0 || ((above.mode & 0o020) !== 0 && above.gid !== gid);
    // Root may keep state inside the server user's directories (a test cluster's root, PGDATA's parent):
    // that user can already stop its own server's archiving. Anyone else's directory is refused.
    const foreign = above.uid !== 0 && above.uid !== uid && uid !== 0;
    if (foreign || (othersWrite && (above.mode & sticky) === 0)) {
      refuse(
        path,
        `is inside ${dir} (uid ${above.uid}, mode ${(above.mode & 0o7777).toString(8)}), which another user could rename it out of`,
        'Choose a directory whose parents only root and you can write',
      );
    }
    if (dir === dirname(dir)) break;
  }
  return resolve(path);
}
