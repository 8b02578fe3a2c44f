/**
 * The newest backups of a catalog that tests accept (completed, copied to
 * DR...), found in one walk newest first: for each test the newest by
 * `byStart`, so that of backups started within one second it is the one that
 * started last, as retention counts it.
 */
import { byStart, type Manifest } from './manifest.ts';
import type { Repository } from './repository.ts';

const stampOf = (backupId: string) => backupId.slice(0, 16);

/** For each test, the newest backup it accepts; reading no more than `limit` manifests in all. */
export async function newestBackups(
  repository: Repository,
  tests: Array<(manifest: Manifest) => boolean>,
  options: { limit?: number } = {},
): Promise<{ manifests: Array<Manifest | undefined>; read: number }> {
  const ids = (await repository.listBackupIds()).reverse();
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const found: Manifest[][] = tests.map(() => []);
  let read = 0;
  for (const id of ids) {
    // A test is settled once the walk is past the second of the first backup it accepted: nothing newer comes.
    const open = found.map((f) => f.length === 0 || stampOf(id) === stampOf(f[0]!.backupId));
    if (!open.includes(true) || read >= limit) break;
    const manifest = await repository.readManifest(id);
    read++;
    if (!manifest) continue;
    tests.forEach((test, i) => {
      if (open[i] && test(manifest)) found[i]!.push(manifest);
    });
  }
  return { manifests: found.map((f) => f.sort(byStart).at(-1)), read };
}

/** The newest backup `accepts`. */
export async function newestBackup(
  repository: Repository,
  accepts: (manifest: Manifest) => boolean,
  options: { limit?: number } = {},
): Promise<{ manifest?: Manifest; read: number }> {
  const { manifests, read } = await newestBackups(repository, [accepts], options);
  return { ...(manifests[0] ? { manifest: manifests[0] } : {}), read };
}
