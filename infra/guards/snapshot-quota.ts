/**
 * The snapshots a configured fleet keeps, projected per Region against EBS's
 * "Snapshots per Region" quota (100,000; docs.aws.amazon.com/ebs/latest/userguide/ebs-resource-quotas.html),
 * so that `cdk synth` fails on a retention that would run into it, instead of
 * CreateSnapshots failing months later. Hourly backups kept 7 days for 500
 * clusters of 2 volumes are 168,000; thinned (24 hourly, 7 daily, 4 weekly,
 * 12 monthly) about 49,000.
 *
 * Each cluster counts (its volumes) × (the most backups its retention keeps at
 * its most frequent schedule's cadence, domain/backup/retention.ts
 * projectedBackups); its DR copies count in the DR Region with the DR policy.
 * A cluster without retention keeps every backup and cannot be projected: it
 * is named, not counted.
 */
import type { IValidation } from 'constructs';
import { projectedBackups, type RetentionPolicy } from '#domain/backup/retention';
import type { EnvironmentConfig } from '../config/config.ts';

/** EBS's default "Snapshots per Region" quota. */
export const snapshotsPerRegionQuota = 100_000;

/** Volumes counted for a cluster that lists none (PGDATA, pg_wal and a tablespace). */
export const assumedVolumesPerCluster = 3;

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

export interface SnapshotProjection {
  region: string;
  snapshots: number;
  /** Clusters that keep every backup (no retention). */
  unbounded: string[];
}

/** Snapshots the environment's clusters keep, per Region (the stack's, and the DR Region). */
export function projectSnapshots(config: EnvironmentConfig): SnapshotProjection[] {
  const source: SnapshotProjection = {
    region: config.region ?? 'the stack Region',
    snapshots: 0,
    unbounded: [],
  };
  const dr: SnapshotProjection | undefined = config.dr
    ? { region: config.dr.region, snapshots: 0, unbounded: [] }
    : undefined;
  for (const cluster of config.clusters) {
    const volumes = cluster.volumeIds?.length ?? assumedVolumesPerCluster;
    const cadence = Math.min(24 * 7, ...cluster.schedules.map((s) => everyHours(s.expression)));
    const add = (into: SnapshotProjection, policy: RetentionPolicy | undefined) => {
      if (!policy) into.unbounded.push(cluster.name);
      else into.snapshots += volumes * projectedBackups(policy, cadence);
    };
    add(source, cluster.retention);
    if (dr && cluster.copyToDr) add(dr, cluster.retention?.dr ?? cluster.retention);
  }
  // A DR copy to the same Region (another account) lands in another account's quota: still its own line.
  return dr ? [source, dr] : [source];
}

/** The validation: each Region's projection within the quota. */
export class SnapshotQuota implements IValidation {
  constructor(
    private readonly config: EnvironmentConfig,
    private readonly quota = snapshotsPerRegionQuota,
  ) {}

  validate(): string[] {
    return projectSnapshots(this.config)
      .filter((p) => p.snapshots > this.quota)
      .map(
        (p) =>
          `environment ${this.config.name}: its retention keeps up to ${p.snapshots} snapshots in ${p.region}; ` +
          `EBS allows ${this.quota} per Region (ebs-resource-quotas): thin the retention ` +
          '(retention.thin: hours, days, weeks, months) or keep fewer' +
          (p.unbounded.length > 0 ? `; ${p.unbounded.length} cluster(s) without retention not counted` : ''),
      );
  }
}
