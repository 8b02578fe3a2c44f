/**
 * A snapshot's size, where its provider knows it: an EBS snapshot's volume
 * size (what a restore creates, from the manifest), the bytes a local
 * snapshot (copy, btrfs) holds on this host. Undefined elsewhere (exec, a
 * local snapshot on another host or deleted).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import type { ManifestSnapshot } from '#domain/repository/manifest';
import { localProviders } from './create.ts';

const run = promisify(execFile);

export async function snapshotBytes(snapshot: ManifestSnapshot): Promise<number | undefined> {
  if (snapshot.volume) return snapshot.volume.sizeGiB * 2 ** 30;
  if (!localProviders.includes(snapshot.provider) || snapshot.state === 'deleted') return undefined;
  if (!snapshot.snapshotId.startsWith('/') || !existsSync(snapshot.snapshotId)) return undefined;
  try {
    // Disk usage in bytes: for btrfs, the data the snapshot refers to (shared extents counted in full).
    const { stdout } = await run('du', ['-s', '-B1', '-x', snapshot.snapshotId]);
    return Number(stdout.split(/\s/)[0]);
  } catch {
    return undefined;
  }
}
