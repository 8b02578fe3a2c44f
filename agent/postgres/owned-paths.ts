/**
 * Writing, emptying and handing over paths inside directories that another
 * user controls: a restore or a drill runs as root, in a data directory (and
 * beside volumes) that belong to `postgres`. A database superuser can run
 * programs as `postgres` (`COPY … TO PROGRAM`), so whatever that user may
 * plant there — `postgresql.auto.conf -> /etc/shadow`, `pg_stat_tmp -> /` —
 * must not be followed by root. Node.js has no openat(2), so every final
 * component is opened with O_NOFOLLOW and then changed through its descriptor
 * (fchown, fchmod), and trees are emptied by `find -P` (which never follows a
 * link and works relative to directory descriptors) run as the directory's
 * owner: it can then remove only what that owner could remove anyway.
 */
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { basename, dirname } from 'node:path';
import { PreconditionError, UnsafeRestorePathError } from '#domain/errors';

export interface Owner {
  uid: number;
  gid: number;
}

const { O_APPEND, O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_WRONLY } = constants;

const isRoot = () => process.getuid?.() === 0;

/** O_NOFOLLOW on a symbolic link fails with ELOOP (open(2)). */
function isLinkRefusal(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ELOOP' || code === 'EMLINK';
}

function refuseLink(path: string, error: unknown, what: string): never {
  if (isLinkRefusal(error)) {
    throw new PreconditionError(
      `${path} is a symbolic link; pgsnap ${what} and does not follow links in a directory another user ` +
        `controls. Replace it with a regular file (check where it pointed: it may have been planted)`,
      { cause: error },
    );
  }
  throw error;
}

/** How readWithoutFollowing reads, and what it says when it will not. */
interface PlainRead {
  /** Read at most this much; all of it without. */
  maxBytes?: number;
  /** Also refuse a file with more than one link (a hard link to a file of someone else). */
  oneLink?: boolean;
  /** The error for a symbolic link at `path`. */
  link(error: unknown): Error;
  /** The error for anything not a regular file (a FIFO, a device, a directory; with oneLink, a hard link). */
  notFile(links: number): Error;
}

/**
 * Reads a regular file without following a link at its last component
 * (O_NOFOLLOW; O_NONBLOCK, so that a FIFO planted there cannot hang the
 * read); what is there is checked on the open descriptor, not by a path
 * that could change in between.
 */
function readWithoutFollowing(path: string, how: PlainRead): Buffer {
  let fd: number;
  try {
    fd = openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (error) {
    throw isLinkRefusal(error) ? how.link(error) : error;
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile() || (how.oneLink && stat.nlink > 1)) throw how.notFile(stat.nlink);
    if (how.maxBytes === undefined) return readFileSync(fd);
    const buffer = Buffer.alloc(how.maxBytes);
    let length = 0;
    while (length < how.maxBytes) {
      const read = readSync(fd, buffer, length, how.maxBytes - length, null);
      if (read === 0) break;
      length += read;
    }
    return buffer.subarray(0, length);
  } finally {
    closeSync(fd);
  }
}

/** Writes through an open descriptor of a regular file, then gives it to `owner`. */
function writeOwned(fd: number, path: string, content: string | Uint8Array, owner: Owner): void {
  const stat = fstatSync(fd);
  // A hard link to a file of someone else (protected_hardlinks off) is refused as a link would be.
  if (!stat.isFile() || stat.nlink > 1 || (stat.uid !== owner.uid && stat.uid !== process.getuid?.())) {
    throw new PreconditionError(
      `${path} is not a regular file of the data directory's owner (uid ${stat.uid}, ${stat.nlink} links); ` +
        'pgsnap will not write into it: remove it and run the restore again',
    );
  }
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  for (let written = 0; written < bytes.byteLength; ) {
    written += writeSync(fd, bytes, written, bytes.byteLength - written);
  }
  fchownSync(fd, owner.uid, owner.gid);
}

/** Appends to `path` (created, mode 0600, when missing), never through a link; the file belongs to `owner`. */
export function appendOwnedFile(path: string, content: string, owner: Owner): void {
  let fd: number;
  try {
    fd = openSync(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK, 0o600);
  } catch (error) {
    refuseLink(path, error, `appends to ${basename(path)}`);
  }
  try {
    writeOwned(fd, path, content, owner);
  } finally {
    closeSync(fd);
  }
}

/**
 * The text of `path`, a regular file with one link, never read through a
 * link: root must not copy what a planted link points at into a file the
 * data directory's owner reads. Empty when there is no file.
 */
export function readOwnedFile(path: string): string {
  try {
    return readWithoutFollowing(path, {
      oneLink: true,
      link: (error) => refuseLink(path, error, `reads ${basename(path)}`),
      notFile: (links) =>
        new PreconditionError(
          `${path} is not a regular file (${links} links); pgsnap will not read it: remove it and run the restore again`,
        ),
    }).toString('utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw error;
  }
}

/** Replaces `path` with a new file holding `content` (a link there is removed, not followed). */
export function writeOwnedFile(path: string, content: string, mode: number, owner: Owner): void {
  rmSync(path, { force: true }); // unlink(2): a link goes, its target stays
  // O_EXCL: should a link appear again meanwhile, open fails rather than follow it.
  const fd = openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  try {
    writeOwned(fd, path, content, owner);
  } finally {
    closeSync(fd);
  }
}

/**
 * Makes `path` a directory of `owner` with `mode`; an existing directory is
 * taken over, a link or anything else is refused. Parents are created as
 * needed, and must be trusted by the caller.
 */
export function ownedDirectory(path: string, owner: Owner | undefined, mode: number): string {
  mkdirSync(dirname(path), { recursive: true });
  try {
    mkdirSync(path, { mode });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  let fd: number;
  try {
    fd = openSync(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      // With O_DIRECTORY, Linux answers ENOTDIR for a link too.
      const link = lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink();
      throw new PreconditionError(
        `${path} is ${link ? 'a symbolic link' : 'not a directory'}; pgsnap makes a directory ` +
          'there and will not follow or replace what another user may have planted. Remove it and try again',
        { cause: error },
      );
    }
    throw error;
  }
  try {
    fchmodSync(fd, mode);
    if (owner) fchownSync(fd, owner.uid, owner.gid);
  } finally {
    closeSync(fd);
  }
  return path;
}

/**
 * `mkdir -p PATH` as `owner` (as ourselves unless root): for a directory
 * reached through links the owner controls (pg_wal/archive_status), which
 * root must not resolve itself.
 */
export function makeDirectoryAsOwner(path: string, owner: Owner, mode: number): void {
  if (!isRoot() || owner.uid === 0) {
    mkdirSync(path, { recursive: true, mode });
    return;
  }
  runAsOwner('mkdir', ['-p', '-m', mode.toString(8), '--', path], owner);
}

/**
 * Removes what is inside `dir` without following any link (the directory
 * itself stays). As root, the work is done as `owner`, the user who controls
 * the directory.
 */
export function emptyDirectory(dir: string, owner: Owner): void {
  if (!isRoot() || owner.uid === 0) {
    // Our own directory: a link in it leads only where we could go anyway, and rm removes links, not targets.
    for (const entry of lstatSync(dir).isDirectory() ? readdirSync(dir) : []) {
      rmSync(`${dir}/${entry}`, { recursive: true, force: true });
    }
    return;
  }
  removeAsOwner(['-mindepth', '1'], dir, owner);
}

/** Removes `path` (a link: the link only) and, for a directory, all in it; as `owner` when root. */
export function removeTree(path: string, owner: Owner): void {
  if (!lstatSync(path, { throwIfNoEntry: false })) return;
  if (!isRoot() || owner.uid === 0) rmSync(path, { recursive: true, force: true });
  else removeAsOwner([], path, owner);
}

/** `find -P PATH … -delete`, run as `owner`: -P treats PATH and every entry as what it is, links included. */
function removeAsOwner(depth: string[], path: string, owner: Owner): void {
  runAsOwner('find', ['-P', path, ...depth, '-delete'], owner);
}

function runAsOwner(command: string, args: string[], owner: Owner): void {
  // libuv drops root's supplementary groups before it changes uid (uv_spawn: setgroups(0, NULL)).
  const result = spawnSync(command, args, {
    uid: owner.uid,
    gid: owner.gid,
    cwd: '/',
    encoding: 'utf8',
  });
  if (result.error || result.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} as uid ${owner.uid} failed: ${result.error?.message ?? result.stderr.trim()}`,
      { cause: result.error },
    );
  }
}

/**
 * Refuses `path` when it, or any directory on the way to it, is a symbolic
 * link, when pgsnap runs as root: root then acts on the path by name (mkdir, mount, chown, pg_ctl -D),
 * and a link planted on a restored volume would take that elsewhere. A part
 * not there yet ends the walk: whoever creates it does so without following.
 */
export function refuseLinksOnPath(path: string, what: string): void {
  // Not root, pgsnap acts with its user's rights: a link leads nowhere that user could not go anyway (the
  // non-root demo links each local volume at its mount point).
  if (!isRoot()) return;
  let at = '';
  for (const part of path.split('/').filter(Boolean)) {
    at = `${at}/${part}`;
    const found = lstatSync(at, { throwIfNoEntry: false });
    if (!found) return;
    if (found.isSymbolicLink()) {
      throw new UnsafeRestorePathError(
        `${what} ${path} is reached through ${at}, a symbolic link: pgsnap acts as root only on paths whose every ` +
          'directory is a real one, and does not follow links on restored volumes. Check who planted it; the ' +
          'restore stops here',
      );
    }
    if (at !== path && !found.isDirectory()) {
      throw new UnsafeRestorePathError(`${what} ${path} is reached through ${at}, which is not a directory`);
    }
  }
}

/**
 * `ownedDirectory` for a path that crosses restored volumes: no link on the
 * way is followed (refuseLinksOnPath), each missing parent is made as a
 * directory of `owner` through ownedDirectory (never through a link), and the
 * last one is made or taken over with `mode`.
 */
export function ownedDirectoryOnPlainPath(path: string, owner: Owner | undefined, mode: number): string {
  refuseLinksOnPath(path, 'the directory');
  const missing: string[] = [];
  for (let dir = dirname(path); !lstatSync(dir, { throwIfNoEntry: false }); dir = dirname(dir))
    missing.unshift(dir);
  for (const dir of missing) ownedDirectory(dir, owner, mode);
  return ownedDirectory(path, owner, mode);
}

/**
 * Reads at most `maxBytes` of a regular file without following a link at
 * its last component (O_NOFOLLOW; callers check the directories on the way).
 * Anything else (a link, a FIFO, a device) is refused, and the refusal never
 * quotes content: it may land in a record others read.
 */
export function readPlainFile(path: string, maxBytes: number): Buffer {
  return readWithoutFollowing(path, {
    maxBytes,
    link: (error) =>
      new UnsafeRestorePathError(
        `${path} is a symbolic link; pgsnap reads it only as a regular file and does not follow links on ` +
          'restored volumes (check where it points: it may have been planted)',
        { cause: error },
      ),
    notFile: () => new UnsafeRestorePathError(`${path} is not a regular file; pgsnap will not read it`),
  });
}
