/**
 * `cdk synth` against EBS's "Snapshots per Region" quota: the environment's
 * clusters, their volumes, their most frequent schedule's cadence and their
 * retention (the DR policy in the DR Region), projected by the function
 * `pgsnap doctor --fleet` uses too (domain/backup/snapshot-projection.ts).
 * Over the quota fails the synth; near it (80 %) is a warning.
 */
import { Annotations } from 'aws-cdk-lib';
import type { Construct, IValidation } from 'constructs';
import {
  assumedVolumesPerCluster,
  type ClusterKeeping,
  everyHours,
  projectSnapshots as projectKeeping,
  quotaFindings,
  type SnapshotProjection,
  snapshotsPerRegionQuota,
} from '#domain/backup/snapshot-projection';
import type { EnvironmentConfig } from '../config/config.ts';

export { everyHours, type SnapshotProjection, snapshotsPerRegionQuota };

/** Snapshots the environment's clusters keep, per Region (the stack's, and the DR Region). */
export function projectSnapshots(config: EnvironmentConfig): SnapshotProjection[] {
  const source = config.region ?? 'the stack Region';
  // A DR copy to the same Region (another account) lands in another account's quota: still its own line.
  const dr =
    config.dr && (config.dr.region === source ? `${config.dr.region} (DR account)` : config.dr.region);
  const clusters = config.clusters.map(
    (cluster): ClusterKeeping => ({
      cluster: cluster.name,
      volumes: cluster.volumeIds?.length ?? assumedVolumesPerCluster,
      everyHours: Math.min(24 * 7, ...cluster.schedules.map((s) => everyHours(s.expression))),
      keeps: [
        { region: source, policy: cluster.retention },
        ...(dr && cluster.copyToDr
          ? [{ region: dr, policy: cluster.retention?.dr ?? cluster.retention }]
          : []),
      ],
    }),
  );
  return projectKeeping(clusters, dr ? [source, dr] : [source]);
}

/** A synth warning on each Region the projection puts near the quota (over it is the validation's). */
export function warnNearSnapshotQuota(scope: Construct, config: EnvironmentConfig): void {
  for (const finding of quotaFindings(projectSnapshots(config)).filter((f) => f.level === 'near')) {
    Annotations.of(scope).addWarningV2(
      'pgsnap:snapshot-quota-near',
      `environment ${config.name}: ${finding.message}`,
    );
  }
}

/** The validation: each Region's projection within the quota. */
export class SnapshotQuota implements IValidation {
  constructor(
    private readonly config: EnvironmentConfig,
    private readonly quota = snapshotsPerRegionQuota,
  ) {}

  validate(): string[] {
    return quotaFindings(projectSnapshots(this.config), this.quota)
      .filter((f) => f.level === 'over')
      .map((f) => `environment ${this.config.name}: ${f.message}`);
  }
}
