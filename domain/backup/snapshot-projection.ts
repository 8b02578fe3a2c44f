/**
 * The snapshots a fleet keeps, projected per Region against EBS's "Snapshots
 * per Region" quota (100,000; docs.aws.amazon.com/ebs/latest/userguide/ebs-resource-quotas.html),
 * so that `cdk synth` fails on a retention that would run into it, and
 * `pgsnap doctor --fleet` warns near it, instead of CreateSnapshots failing
 * months later. Hourly backups kept 7 days for 500 clusters of 2 volumes are
 * 168,000; thinned (24 hourly, 7 daily, 4 weekly, 12 monthly) about 49,000.
 *
 * Each cluster counts (its volumes) × (the most backups its retention keeps at
 * its cadence, {@link projectedBackups}) in each Region it keeps snapshots in
 * (the source's, and the DR Region's with the DR policy). A cluster without
 * retention keeps every backup and cannot be projected: it is named, not
 * counted.
 */
import { projectedBackups, type RetentionPolicy } from './retention.ts';

/** EBS's default "Snapshots per Region" quota. */
export const snapshotsPerRegionQuota = 100_000;

/** Volumes counted for a cluster that lists none (PGDATA, pg_wal and a tablespace). */
export const assumedVolumesPerCluster = 3;

/** From this share of the quota on, the projection warns (a fleet grows; the quota is per account). */
export const nearQuotaShare = 0.8;

/** Hours between backups of a schedule expression: exact for rate(), the tightest reading of a cron's hours. */
export function everyHours(expression: string): number {
  const rate = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(expression);
  if (rate) {
    const n = Number(rate[1]);
    return rate[2]!.startsWith('minute') ? n / 60 : rate[2]!.startsWith('hour') ? n : n * 24;
  }
  const cron = /^cron\((\S+) (\S+) /.exec(expression);
  if (!cron) return 24;
  const [, minutes, hours] = cron as unknown as [string, string, string];
  const perHour =
    minutes === '*'
      ? 60
      : /^\*\/(\d+)$/.test(minutes)
        ? 60 / Number(minutes.slice(2))
        : minutes.split(',').length;
  if (hours === '*') return 1 / perHour;
  const step = /^(?:\*|\d+(?:-\d+)?)\/(\d+)$/.exec(hours);
  if (step) return Number(step[1]) / perHour;
  const range = /^(\d+)-(\d+)$/.exec(hours);
  const count = range ? Number(range[2]) - Number(range[1]) + 1 : hours.split(',').length;
  return 24 / (count * perHour);
}

/** What one cluster keeps, and where. */
export interface ClusterKeeping {
  cluster: string;
  /** Volumes per snapshot set. */
  volumes: number;
  /** Hours between its backups (its most frequent schedule). */
  everyHours: number;
  /**
   * Each Region its snapshots are kept in, with the policy that keeps them there (none: every backup), or
   * instead the backups `held` there now (doctor without a policy: what the catalog holds, not a projection).
   */
  keeps: Array<{ region: string; policy: RetentionPolicy | undefined; held?: number }>;
}

export interface SnapshotProjection {
  region: string;
  snapshots: number;
  /** Clusters that keep every backup (no retention). */
  unbounded: string[];
}

/** Snapshots the clusters keep, per Region, in the order the Regions first appear. */
export function projectSnapshots(clusters: ClusterKeeping[], regions: string[] = []): SnapshotProjection[] {
  const byRegion = new Map<string, SnapshotProjection>(
    regions.map((region) => [region, { region, snapshots: 0, unbounded: [] }]),
  );
  for (const cluster of clusters) {
    for (const { region, policy, held } of cluster.keeps) {
      const into = byRegion.get(region) ?? { region, snapshots: 0, unbounded: [] };
      byRegion.set(region, into);
      if (held !== undefined) into.snapshots += cluster.volumes * held;
      else if (!policy) into.unbounded.push(cluster.cluster);
      else into.snapshots += cluster.volumes * projectedBackups(policy, cluster.everyHours);
    }
  }
  return [...byRegion.values()];
}

export interface QuotaFinding {
  region: string;
  level: 'over' | 'near';
  snapshots: number;
  message: string;
}

/** The Regions over the quota or near it, each with what to do. */
export function quotaFindings(
  projections: SnapshotProjection[],
  quota = snapshotsPerRegionQuota,
): QuotaFinding[] {
  return projections
    .filter((p) => p.snapshots >= quota * nearQuotaShare)
    .map((p) => {
      const level = p.snapshots > quota ? 'over' : 'near';
      return {
        region: p.region,
        level,
        snapshots: p.snapshots,
        message:
          `the retention keeps up to ${p.snapshots} snapshots in ${p.region}; EBS allows ${quota} per Region ` +
          `(ebs-resource-quotas)${level === 'near' ? `, and this is over ${Math.round(nearQuotaShare * 100)} % of it` : ''}: ` +
          'thin the retention (retention.thin: hours, days, weeks, months), keep fewer, or ask AWS for more' +
          (p.unbounded.length > 0 ? `; ${p.unbounded.length} cluster(s) without retention not counted` : ''),
      };
    });
}
