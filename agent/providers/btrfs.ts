/**
 * The btrfs provider: a read-only snapshot of the subvolume that holds each
 * path, taken in milliseconds whatever the size; restored as a writable
 * snapshot of that snapshot. Each path must be the top of a subvolume, so that
 * the snapshot holds exactly that directory.
 */
import { execFile } from 'node:child_process';
import { chownSync, mkdirSync, statSync } from 'node:fs';
import { rmdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { PreconditionError } from '#domain/errors';
import type { ClusterPath } from '../volumes/cluster-paths.ts';
import type { SnapshotProvider, VolumeSnapshot } from './provider.ts';

const run = promisify(execFile);

/** btrfs gives every subvolume's root directory inode 256. */
const subvolumeRootInode = 256;

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
        // Snapshots live beside the subvolume, on the same file system (btrfs cannot snapshot across them).
        const dir = join(dirname(path.path), '.pgsnap', backupId);
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        // They hold the server user's files and are restored for it: they belong to the subvolume's owner.
        const owner = statSync(path.path);
        for (const d of [dirname(dir), dir]) chownSync(d, owner.uid, owner.gid);
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
