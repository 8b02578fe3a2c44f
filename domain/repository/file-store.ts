/**
 * The `file://` backend: one file per object under the repository directory.
 *
 * Nothing is ever half-written: an object is written to a hidden temporary
 * name, fsynced, and then linked (create-if-absent) or renamed (replace) into
 * place, and the directory is fsynced. link(2) fails with EEXIST when the name
 * exists, which makes "store unless present" atomic without a lock.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chown, link, mkdir, open, readdir, readFile, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { RepositoryAccessError, RepositoryUnreachableError } from './errors.ts';
import type { FileLocation } from './location.ts';
import { checkKey, type ObjectStore } from './store.ts';

const fileMode = 0o640;
const dirMode = 0o750;

export class FileStore implements ObjectStore {
  readonly url: string;
  private readonly root: string;
  private owner: Promise<{ uid: number; gid: number } | undefined> | undefined;

  constructor(location: FileLocation) {
    this.root = location.root;
    this.url = location.url;
  }

  /**
   * The repository directory must exist. When root writes into a directory
   * another user owns (the agent as root, archive_command as postgres), new
   * files are given to that owner, so both can go on writing and reading.
   */
  private checkRoot(): Promise<{ uid: number; gid: number } | undefined> {
    this.owner ??= stat(this.root).then(
      (s) => {
        if (!s.isDirectory()) throw new RepositoryAccessError(`repository ${this.url} is not a directory`);
        return process.getuid?.() === 0 && s.uid !== 0 ? { uid: s.uid, gid: s.gid } : undefined;
      },
      (error: NodeJS.ErrnoException) => {
        this.owner = undefined;
        throw this.explain(error, 'open', this.root);
      },
    );
    return this.owner;
  }

  private path(key: string): string {
    return join(this.root, checkKey(key));
  }

  private explain(error: NodeJS.ErrnoException, action: string, path: string): Error {
    const what = `cannot ${action} ${path} in repository ${this.url}: ${error.code ?? ''} ${error.message}`;
    if (error.code === 'ENOENT' && path === this.root) {
      return new RepositoryAccessError(
        `repository directory ${this.root} does not exist; create it, owned by the user PostgreSQL runs as ` +
          `(e.g. install -d -o postgres -m 750 ${this.root})`,
        { cause: error },
      );
    }
    if (error.code === 'EACCES' || error.code === 'EPERM' || error.code === 'EROFS') {
      return new RepositoryAccessError(
        `${what}; give the user running pgsnap (uid ${process.getuid?.()}) access`,
        {
          cause: error,
        },
      );
    }
    return new RepositoryUnreachableError(what, { cause: error });
  }

  async get(key: string): Promise<Buffer | undefined> {
    await this.checkRoot();
    const path = this.path(key);
    try {
      return await readFile(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw this.explain(error as NodeJS.ErrnoException, 'read', path);
    }
  }

  async exists(key: string): Promise<boolean> {
    await this.checkRoot();
    const path = this.path(key);
    try {
      await stat(path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw this.explain(error as NodeJS.ErrnoException, 'stat', path);
    }
  }

  async modifiedAt(key: string): Promise<Date | undefined> {
    await this.checkRoot();
    const path = this.path(key);
    try {
      return (await stat(path)).mtime;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw this.explain(error as NodeJS.ErrnoException, 'stat', path);
    }
  }

  async putIfAbsent(key: string, body: Buffer): Promise<'created' | 'exists'> {
    const path = this.path(key);
    const temporary = await this.writeTemporary(path, body);
    try {
      await link(temporary, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return 'exists';
      throw this.explain(error as NodeJS.ErrnoException, 'create', path);
    } finally {
      await unlink(temporary).catch(() => {});
    }
    await syncDirectory(dirname(path));
    return 'created';
  }

  async put(key: string, body: Buffer): Promise<void> {
    const path = this.path(key);
    const temporary = await this.writeTemporary(path, body);
    try {
      await rename(temporary, path);
    } catch (error) {
      await unlink(temporary).catch(() => {});
      throw this.explain(error as NodeJS.ErrnoException, 'replace', path);
    }
    await syncDirectory(dirname(path));
  }

  async delete(key: string): Promise<void> {
    await this.checkRoot();
    const path = this.path(key);
    try {
      await unlink(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw this.explain(error as NodeJS.ErrnoException, 'delete', path);
    }
    // A backup's directory goes with its last object, so listings do not show empty backups.
    await rmdir(dirname(path)).catch(() => {});
    await syncDirectory(dirname(dirname(path))).catch(() => {});
  }

  async list(prefix: string): Promise<string[]> {
    await this.checkRoot();
    const path = prefix === '' ? this.root : this.path(prefix.replace(/\/$/, ''));
    try {
      return (await readdir(path)).filter((name) => !name.startsWith('.')).sort();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw this.explain(error as NodeJS.ErrnoException, 'list', path);
    }
  }

  async *scan(prefix: string, startAfter?: string): AsyncIterable<string> {
    for (const name of await this.list(prefix)) if (startAfter === undefined || name > startAfter) yield name;
  }

  close(): void {}

  /** Writes and fsyncs a hidden temporary file beside `path` (same directory, so link/rename stay atomic). */
  private async writeTemporary(path: string, body: Buffer): Promise<string> {
    const owner = await this.checkRoot();
    const dir = dirname(path);
    await this.makeDirectories(dir, owner);
    const temporary = join(dir, `.${randomBytes(6).toString('hex')}.tmp`);
    let handle: Awaited<ReturnType<typeof open>> | undefined;
    try {
      handle = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, fileMode);
      await handle.writeFile(body);
      await handle.sync();
      if (owner) await handle.chown(owner.uid, owner.gid);
    } catch (error) {
      await handle?.close();
      await unlink(temporary).catch(() => {});
      throw this.explain(error as NodeJS.ErrnoException, 'write', temporary);
    }
    await handle.close();
    return temporary;
  }

  private async makeDirectories(dir: string, owner: { uid: number; gid: number } | undefined) {
    if (dir === this.root) return;
    try {
      await mkdir(dir, { mode: dirMode });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return;
      if (code !== 'ENOENT') throw this.explain(error as NodeJS.ErrnoException, 'create directory', dir);
      await this.makeDirectories(dirname(dir), owner);
      await mkdir(dir, { mode: dirMode }).catch((again: NodeJS.ErrnoException) => {
        if (again.code !== 'EEXIST') throw this.explain(again, 'create directory', dir);
      });
    }
    if (owner) await chown(dir, owner.uid, owner.gid).catch(() => {});
    await syncDirectory(dirname(dir));
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
