/**
 * `pgsnap doctor --fleet`: the EBS snapshots every cluster of the repository
 * keeps, per Region, against EBS's 100,000 per Region, by the projection
 * `cdk synth` makes (domain/backup/snapshot-projection.ts). A host does not
 * have the deployment's configuration, so the fleet is what the repository
 * records: its clusters, each one's volumes (the EBS snapshots of its newest
 * completed backup, in their volumes' Region; its DR copies in theirs) and its
 * cadence (the spacing of its latest backups). The retention is the one the
 * flags give (--keep-last, --keep-days, --thin, for the DR side too); without
 * it, the backups each catalog holds now are counted, not projected.
 */
import { listClusters } from '#domain/backup/fleet-view';
import type { RetentionPolicy } from '#domain/backup/retention';
import { type ClusterKeeping, projectSnapshots, quotaFindings } from '#domain/backup/snapshot-projection';
import type { Manifest } from '#domain/repository/manifest';
import { newestBackup } from '#domain/repository/newest';
import { Repository } from '#domain/repository/repository';
import type { ObjectStore } from '#domain/repository/store';
import { type CheckResult, fail, ok, warn } from './check.ts';

/** Backups whose spacing gives a cluster's cadence. */
const cadenceSample = 25;

/** Hours between backups, as the ids' times say: the median gap of the latest ones (24 when fewer than 2). */
export function cadenceHours(backupIds: string[]): number {
  const times = backupIds.slice(-cadenceSample).map((id) => {
    const [, y, mo, d, h, mi, s] = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(id)!;
    return Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  });
  const gaps = times
    .slice(1)
    .map((t, i) => (t - times[i]!) / 3_600_000)
    .filter((g) => g > 0)
    .sort((a, b) => a - b);
  return gaps.length === 0 ? 24 : gaps[Math.floor(gaps.length / 2)]!;
}

const regionOf = (availabilityZone: string | undefined) =>
  availabilityZone ? availabilityZone.replace(/[a-z]$/, '') : 'the source Region';

/** One cluster's keeping, from its catalog; undefined when it has no completed backup of EBS snapshots. */
async function keepingOf(
  repository: Repository,
  policy: RetentionPolicy | undefined,
): Promise<ClusterKeeping | undefined> {
  const ids = await repository.listBackupIds();
  const hasEbs = (m: Manifest) => m.state === 'completed' && m.snapshots.some((s) => s.provider === 'ebs');
  const { manifest } = await newestBackup(repository, hasEbs, { limit: 10 });
  if (!manifest) return undefined;
  const ebs = manifest.snapshots.filter((s) => s.provider === 'ebs');
  const drRegions = [...new Set((manifest.copies ?? []).map((c) => c.region))];
  const keep = (region: string) => (policy ? { region, policy } : { region, policy, held: ids.length });
  return {
    cluster: repository.cluster,
    volumes: ebs.length,
    everyHours: cadenceHours(ids),
    keeps: [keep(regionOf(ebs[0]?.volume?.availabilityZone)), ...drRegions.map((r) => keep(`${r} (DR)`))],
  };
}

export async function snapshotQuotaCheck(
  store: ObjectStore,
  policy: RetentionPolicy | undefined,
): Promise<CheckResult[]> {
  const check = 'snapshots.quota';
  const clusters: ClusterKeeping[] = [];
  const names = await listClusters(store);
  // One cluster at a time: hundreds of catalogs read at once would trip S3's and the host's limits.
  for (const name of names) {
    const keeping = await keepingOf(new Repository(store, name), policy);
    if (keeping) clusters.push(keeping);
  }
  const projections = projectSnapshots(clusters);
  const basis = policy
    ? `projected with the retention given, at each cluster's cadence`
    : 'held now by the catalogs (give --keep-last, --keep-days or --thin to project a retention)';
  const summary =
    `${names.length} cluster(s) in ${store.url}, ${clusters.length} with EBS snapshots; snapshots ${basis}: ` +
    (projections.length === 0 ? 'none' : projections.map((p) => `${p.snapshots} in ${p.region}`).join(', '));
  const findings = quotaFindings(projections);
  if (findings.length === 0) return [ok(check, summary)];
  return findings.map((f) => (f.level === 'over' ? fail : warn)(check, `${summary}; ${f.message}`));
}
