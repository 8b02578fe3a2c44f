/**
 * The newest backup of a catalog that a test accepts (completed, copied to
 * DR...), read newest first: the newest by `byStart`, so that of backups
 * started within one second it is the one that started last, as retention
 * counts it.
 */
import { byStart, type Manifest } from './manifest.ts';
import type { Repository } from './repository.ts';

const stampOf = (backupId: string) => backupId.slice(0, 16);

export async function newestBackup(
  repository: Repository,
  accepts: (manifest: Manifest) => boolean,
  options: { limit?: number } = {},
): Promise<{ manifest?: Manifest; read: number }> {
  const ids = (await repository.listBackupIds()).reverse();
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const found: Manifest[] = [];
  let read = 0;
  for (const id of ids) {
    // Past the second of the first one found, nothing newer can come.
    if (found.length > 0 && stampOf(id) !== stampOf(found[0]!.backupId)) break;
    if (read >= limit) break;
    const manifest = await repository.readManifest(id);
    read++;
    if (manifest && accepts(manifest)) found.push(manifest);
  }
  const manifest = found.sort(byStart).at(-1);
  return { ...(manifest ? { manifest } : {}), read };
}
