/**
 * The btrfs provider: a read-only snapshot of the subvolume that holds each
 * path, taken in milliseconds whatever the size; restored as a writable
 * snapshot of that snapshot. Each path must be the top of a subvolume, so that
 * the snapshot holds exactly that directory.
 */
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { rmdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { PreconditionError } from '#domain/errors';
import { ownedDirectory } from '../postgres/owned-paths.ts';
import type { ClusterPath } from '../volumes/cluster-paths.ts';
import type { SnapshotProvider, VolumeSnapshot } from './provider.ts';

const run = promisify(execFile);

/** btrfs gives every subvolume's root directory inode 256. */
const subvolumeRootInode = 256;

/**
 * Where the snapshots of `subvolume` for one backup go: beside it, on the
 * same file system (btrfs cannot snapshot across them), in `.pgsnap/<backupId>`.
 * Its parent usually belongs to the server's user, who could plant
 * `.pgsnap -> /etc` there: both directories are made without following a link
 * and kept ours, mode 0711, so that the server's user can reach a restored
 * data directory inside but place nothing there (a drill restores into
 * `drill-<name>` beside the snapshot, a name it could guess). The snapshots
 * themselves keep the owner of the files they hold.
 */
export function snapshotDirectory(subvolume: string, backupId: string): string {
  const self = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const top = ownedDirectory(join(dirname(subvolume), '.pgsnap'), self, 0o711);
  return ownedDirectory(join(top, backupId), self, 0o711);
}

export class BtrfsProvider implements SnapshotProvider {
  readonly name = 'btrfs';

  async snapshot(backupId: string, paths: ClusterPath[]): Promise<VolumeSnapshot[]> {
    for (const path of paths) {
      if (statSync(path.path).ino !== subvolumeRootInode) {
        throw new PreconditionError(
          `${path.path} (${path.role}) is not the top of a btrfs subvolume; create it with btrfs subvolume create ` +
            'and move the files into it, or use --provider copy',
        );
      }
    }
    const taken: VolumeSnapshot[] = [];
    try {
      for (const path of paths) {
        const dir = snapshotDirectory(path.path, backupId);
        const snapshot = join(dir, basename(path.path));
        await run('btrfs', ['subvolume', 'snapshot', '-r', path.path, snapshot]);
        taken.push({ role: path.role, source: path.path, ...(path.oid ? { oid: path.oid } : {}), snapshot });
      }
      return taken;
    } catch (error) {
      await this.delete(taken);
      throw error;
    }
  }

  async restore(snapshot: VolumeSnapshot, target: string): Promise<void> {
    await run('btrfs', ['subvolume', 'snapshot', snapshot.snapshot, target]);
  }

  /** A writable snapshot can only be made on the snapshot's own file system: beside it. */
  scratchTarget(snapshot: VolumeSnapshot, _workDir: string, name: string): string {
    return join(dirname(snapshot.snapshot), `drill-${name}`);
  }

  async discard(target: string): Promise<void> {
    await run('btrfs', ['subvolume', 'delete', target]).catch(() => {});
  }

  async delete(snapshots: VolumeSnapshot[]): Promise<void> {
    for (const s of snapshots) {
      await run('btrfs', ['subvolume', 'delete', s.snapshot]).catch(() => {});
      // The backup's directory goes with its last snapshot.
      await rmdir(dirname(s.snapshot)).catch(() => {});
    }
  }
}
