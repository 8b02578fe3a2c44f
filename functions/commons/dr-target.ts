/**
 * The DR target a copy Lambda acts on: PGSNAP_DR (accounts, Region, key, role) with each copied cluster's
 * DR repository from the cluster catalog, where the stack writes them (infra/dr/dr-copier.ts): a URL per
 * cluster in the environment passed Lambda's 4 KB at about 40 copied clusters.
 */
import { readCatalog } from '#domain/catalog';
import type { DrTarget } from '#domain/ebs/dr-target';

export async function withDrRepositories(
  target: DrTarget,
  environment: NodeJS.ProcessEnv = process.env,
): Promise<DrTarget> {
  // A local run or a test may give the clusters in PGSNAP_DR itself, and no catalog.
  if (!environment.PGSNAP_CATALOG) return target;
  const catalog = await readCatalog(environment);
  const clusters = { ...target.clusters };
  for (const cluster of catalog.clusters) {
    if (cluster.drRepository) clusters[cluster.name] = { repository: cluster.drRepository };
  }
  return { ...target, clusters };
}
