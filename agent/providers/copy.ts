/**
 * The copy provider: PostgreSQL's documented low-level procedure, copying the
 * files inside backup mode. Works anywhere; the embedded default.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ClusterPath } from '../volumes/cluster-paths.ts';
import type { SnapshotProvider, VolumeSnapshot } from './provider.ts';

const run = promisify(execFile);

export class CopyProvider implements SnapshotProvider {
  readonly name = 'copy';

  constructor(private readonly snapshotDir: string) {}

  async snapshot(backupId: string, paths: ClusterPath[]): Promise<VolumeSnapshot[]> {
    const dir = join(this.snapshotDir, backupId);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const taken: VolumeSnapshot[] = [];
    try {
      for (const [index, path] of paths.entries()) {
        const snapshot = join(dir, `${index}-${path.role}${path.oid ? `-${path.oid}` : ''}`);
        // -a keeps owners and modes; pg_wal's contents are dropped at restore, but its link target matters.
        await run('cp', ['-a', path.path, snapshot]);
        taken.push({ role: path.role, source: path.path, ...(path.oid ? { oid: path.oid } : {}), snapshot });
      }
      return taken;
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }

  async restore(snapshot: VolumeSnapshot, target: string): Promise<void> {
    await run('cp', ['-a', snapshot.snapshot, target]);
  }

  scratchTarget(_snapshot: VolumeSnapshot, workDir: string, name: string): string {
    return join(workDir, name);
  }

  async discard(target: string): Promise<void> {
    rmSync(target, { recursive: true, force: true });
  }

  async delete(snapshots: VolumeSnapshot[]): Promise<void> {
    for (const s of snapshots) rmSync(s.snapshot, { recursive: true, force: true });
  }
}
