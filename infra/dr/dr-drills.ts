/**
 * What DR drills need in the DR stack besides the restore construct's
 * schedules, kits and alarms (infra/restore/restore-in-aws.ts, given
 * `dr.drills`): the count of copied clusters without a recent successful DR
 * drill, read from the DR repository's restore records by a
 * report-backup-age of the DR account, in the DR region, with its one
 * "no recent drill" alarm (a metric lives in one Region, and
 * the source's reporter reads the source repository, where DR drills write
 * no record).
 */
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import type { ClusterCatalog } from '../config/cluster-catalog.ts';
import type { ClusterConfig } from '../config/config.ts';
import { BackupAge, type BackupAgeCluster } from '../monitoring/backup-age.ts';
import { type DrNames, drRepositoryUrl } from './dr-config.ts';

export interface DrDrills {
  names: DrNames;
  bucket: IBucket;
  clusters: ClusterConfig[];
  days: number;
}

/** The clusters the DR drills' age reporter checks (their list goes into the DR catalog's `freshness`). */
export function drDrillAgeClusters(dr: DrDrills): BackupAgeCluster[] {
  return dr.clusters.map((c) => ({
    name: c.name,
    repository: drRepositoryUrl(dr.names, c),
    bucket: dr.bucket,
    prefix: `${c.repository.prefix}${c.name}/`,
    copiedToDr: false,
    drills: true,
    drillDays: dr.days,
  }));
}

/** The DR drills' age reporter over the DR repository (`DrillAge`); it reports the DR copies' backup age too. */
export function drDrillAge(
  scope: Construct,
  dr: DrDrills & { catalog: ClusterCatalog; topic?: ITopic },
): BackupAge {
  return new BackupAge(scope, 'DrillAge', {
    ...(dr.topic ? { topic: dr.topic } : {}),
    clusters: drDrillAgeClusters(dr),
    catalog: dr.catalog,
  });
}
