/**
 * Where a restore target may place what the restore record names: plain paths below a root-owned
 * mountRoot, no link on the way, the file systems and mount options a restored volume gets. The record and
 * the volumes come from a database host: each rule is checked as root, again after normalisation.
 */
import { lstatSync, readlinkSync } from 'node:fs';
import { dirname, normalize } from 'node:path';
import { MountPointInUseError, UnsafeRestorePathError } from '#domain/errors';
import { plainAbsolutePathPattern } from '#domain/repository/manifest';
import type { RestoreRecord } from '#domain/repository/restore-record';
import { ownedDirectory, refuseLinksOnPath } from '../postgres/owned-paths.ts';

/**
 * Where a restore places a path of the source host: below mountRoot when the
 * record has one. The record's paths come from a database host: the result
 * is checked again after normalisation, a plain path (no newline, no `..`)
 * and below mountRoot, whatever the schema let through.
 */
export function restoredPath(record: Pick<RestoreRecord, 'mountRoot'>, path: string): string {
  const root = normalize(record.mountRoot ?? '/').replace(/(.)\/$/, '$1');
  const placed = normalize(`${record.mountRoot ?? ''}/${path}`).replace(/(.)\/$/, '$1');
  const plain = (p: string) => plainAbsolutePathPattern.test(p);
  if (
    !plain(record.mountRoot ?? '/') ||
    !plain(path) ||
    !plain(placed) ||
    !(root === '/' || placed === root || placed.startsWith(`${root}/`))
  ) {
    throw new UnsafeRestorePathError(
      `the restore record places ${JSON.stringify(path)} below ${JSON.stringify(root)}, which is not a plain path ` +
        'below the mount root (letters, digits, ._+@=:,- and no . or .. segment): pgsnap mounts and acts only ' +
        'below mountRoot. The record was written wrongly or rewritten; start a new restore',
    );
  }
  return placed;
}

/** The file systems pgsnap mounts from a restored volume; anything else (a FUSE helper, a network one) is refused. */
export const mountableFileSystems = ['ext4', 'xfs', 'btrfs'] as const;

/**
 * What every restored volume is mounted with: no setuid or device file on it
 * takes effect, and nothing on it runs (a restored volume is the source
 * host's, whose PostgreSQL superuser could write anything there).
 */
export const restoredMountOptions = ['nosuid', 'nodev', 'noexec'] as const;

/**
 * Makes sure the mount root (`/` when the record has none) is a real
 * directory of root's that only root may write, and every directory above it
 * too (a world-writable one with the sticky bit, /tmp, passes: its entries
 * are their owners'); a missing mount root is made so. Nothing else could
 * then move or replace what pgsnap mounts below it.
 */
export function requireRootOwnedMountRoot(mountRoot: string | undefined): void {
  const root = mountRoot ?? '/';
  refuseLinksOnPath(root, 'the mount root');
  let at = '';
  for (const part of ['', ...root.split('/').filter(Boolean)]) {
    at = part === '' ? '/' : `${at === '/' ? '' : at}/${part}`;
    let found = lstatSync(at, { throwIfNoEntry: false });
    if (!found) {
      ownedDirectory(at, { uid: 0, gid: 0 }, 0o755);
      found = lstatSync(at);
    }
    const isRootItself = at === root;
    const othersWrite = (found.mode & 0o022) !== 0;
    const sticky = (found.mode & 0o1000) !== 0;
    if (!found.isDirectory() || found.uid !== 0 || (othersWrite && (isRootItself || !sticky))) {
      throw new UnsafeRestorePathError(
        `the mount root ${root} is not safe to mount below as root: ${at} ${
          found.isDirectory()
            ? `belongs to uid ${found.uid} with mode ${(found.mode & 0o7777).toString(8)}`
            : 'is not a directory'
        }. It and every directory above it must belong to root and be writable by root only ` +
          `(chown root: ${at}; chmod go-w ${at}), or restore below another mountRoot`,
      );
    }
  }
}

/**
 * Refuses a mount point reached through a symbolic link: pgsnap creates the
 * directories on the way as root, and a link someone else placed there would
 * take the mount (and the mkdir) elsewhere, over a directory of their choosing.
 */
export function refuseLinksOnTheWay(target: string, volumeId: string): void {
  let path = '';
  for (const part of dirname(target).split('/').filter(Boolean)) {
    path = `${path}/${part}`;
    const found = lstatSync(path, { throwIfNoEntry: false });
    if (!found) return;
    if (found.isSymbolicLink()) {
      throw new MountPointInUseError(
        `mount point ${target} for volume ${volumeId} is reached through ${path}, a symbolic link to ` +
          `${readlinkSync(path)}: pgsnap mounts only where every directory on the way is a real one. ` +
          "Replace the link by the directory, or restore below another directory (the request's mountRoot)",
      );
    }
  }
}
