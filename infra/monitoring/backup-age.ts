/**
 * The age of each cluster's newest completed backup, at the source and in DR,
 * as metrics: the report-backup-age Lambda, run every 15 minutes by an
 * EventBridge Scheduler schedule, with read access to the clusters'
 * repository prefixes and PutMetricData in the state machine's namespace only.
 */
import { Duration } from 'aws-cdk-lib';
import { PolicyStatement, Role } from 'aws-cdk-lib/aws-iam';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Schedule, ScheduleExpression, ScheduleTargetInput, TimeWindow } from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke } from 'aws-cdk-lib/aws-scheduler-targets';
import { Construct } from 'constructs';
import type { ClusterCatalog } from '../config/cluster-catalog.ts';
import { acknowledge, arnReference, bucketFinding, wildcardReasons } from '../guards/acknowledge.ts';
import { schedulerPrincipal } from '../guards/scheduler-principal.ts';
import { HandlerFunction } from '../lambda/handler-function.ts';
import { backupMetrics } from './metrics-and-events.ts';

export interface BackupAgeCluster {
  name: string;
  /** The repository URL, as the agent names it. */
  repository: string;
  bucket: IBucket;
  /** `<prefix><cluster>/` */
  prefix: string;
  copiedToDr: boolean;
  /** Scheduled drills: days since the last successful one is reported too (the "no drill" alarm's metric). */
  drills?: boolean;
  /** Copied to DR: its DR RPO in minutes, counted in ClustersBehindDrRpo (the copy-lag alarm's metric). */
  drRpoMinutes?: number;
}

/** What report-backup-age checks of each cluster (PGSNAP_FRESHNESS, or the catalog's `freshness`). */
export function freshnessOf(clusters: BackupAgeCluster[]): Array<Record<string, unknown>> {
  return clusters.map((c) => ({
    name: c.name,
    repository: c.repository,
    copiedToDr: c.copiedToDr,
    ...(c.drills ? { drills: true } : {}),
    ...(c.copiedToDr && c.drRpoMinutes ? { drRpoSeconds: c.drRpoMinutes * 60 } : {}),
  }));
}

export class BackupAge extends Construct {
  readonly function: HandlerFunction;

  /**
   * `catalog`: the catalog that holds `freshnessOf(clusters)` (a fleet's list passes Lambda's 4 KB at about
   * 30 clusters); none: the list is in PGSNAP_FRESHNESS.
   */
  constructor(
    scope: Construct,
    id: string,
    props: { clusters: BackupAgeCluster[]; catalog?: ClusterCatalog | undefined },
  ) {
    super(scope, id);
    const fn = new HandlerFunction(this, 'ReportBackupAge', {
      handler: 'report-backup-age',
      description:
        "pgsnap: reports the age of each cluster's newest completed backup, at the source and in DR",
      environment: {
        ...(props.catalog ? {} : { PGSNAP_FRESHNESS: JSON.stringify(freshnessOf(props.clusters)) }),
        PGSNAP_METRICS_NAMESPACE: backupMetrics.namespace,
        PGSNAP_METRICS_DIMENSION: backupMetrics.dimension,
      },
      timeout: Duration.minutes(2),
    });
    this.function = fn;
    props.catalog?.grantRead(fn);
    // PutMetricData has no resource-level permissions; the namespace condition holds it to pgsnap's.
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['cloudwatch:PutMetricData'],
        resources: ['*'],
        conditions: { StringEquals: { 'cloudwatch:namespace': backupMetrics.namespace } },
      }),
    );
    for (const cluster of props.clusters) {
      const backups = `${cluster.prefix}backups/*`;
      cluster.bucket.grantRead(fn, backups);
      acknowledge(fn, {
        [`AwsSolutions-IAM5[Resource::${bucketFinding(cluster.bucket)}/${backups}]`]: `reads the manifests of ${cluster.name}'s backups, under its prefix only`,
      });
      if (cluster.drills) {
        const restores = `${cluster.prefix}restores/*`;
        cluster.bucket.grantRead(fn, restores);
        acknowledge(fn, {
          [`AwsSolutions-IAM5[Resource::${bucketFinding(cluster.bucket)}/${restores}]`]: `reads ${cluster.name}'s restore records, for days since its last drill`,
        });
      }
    }
    acknowledge(fn, {
      'AwsSolutions-IAM5[Action::s3:GetObject*]': 'CDK grantRead: reads of the clusters’ manifests',
      'AwsSolutions-IAM5[Action::s3:GetBucket*]': 'CDK grantRead: bucket location and settings, read only',
      'AwsSolutions-IAM5[Action::s3:List*]': 'CDK grantRead: listing the clusters’ catalogs',
    });

    const role = new Role(this, 'SchedulerRole', {
      assumedBy: schedulerPrincipal(this),
      description: 'pgsnap: lets EventBridge Scheduler report the age of the newest backups',
    });
    new Schedule(this, 'Schedule', {
      description: 'pgsnap: the age of the newest backups, for the dashboard',
      schedule: ScheduleExpression.rate(Duration.minutes(15)),
      timeWindow: TimeWindow.flexible(Duration.minutes(5)),
      target: new LambdaInvoke(fn, { input: ScheduleTargetInput.fromObject({}), role }),
    });
    acknowledge(role, {
      [`AwsSolutions-IAM5[Resource::${arnReference(fn)}:*]`]: wildcardReasons.lambdaVersions,
    });
  }
}
