/**
 * The fleet's freshness: the report-backup-age Lambda, run every 15 minutes by
 * an EventBridge Scheduler schedule, with read access to the clusters'
 * repository prefixes, GetMetricData (the hosts' archive lag) and
 * PutMetricData in the state machine's namespace only; it logs each cluster's
 * ages and publishes the fleet counts, and the alarms over those counts are
 * made here (fleet-alarms.ts): one each, whatever the fleet's size.
 */
import { Duration } from 'aws-cdk-lib';
import type { Alarm } from 'aws-cdk-lib/aws-cloudwatch';
import { PolicyStatement, Role } from 'aws-cdk-lib/aws-iam';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Schedule, ScheduleExpression, ScheduleTargetInput, TimeWindow } from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke } from 'aws-cdk-lib/aws-scheduler-targets';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import type { ClusterCatalog } from '../config/cluster-catalog.ts';
import { acknowledge, arnReference, bucketFinding, wildcardReasons } from '../guards/acknowledge.ts';
import { grantScopes } from '../guards/fleet-grants.ts';
import { schedulerPrincipal } from '../guards/scheduler-principal.ts';
import { HandlerFunction } from '../lambda/handler-function.ts';
import { fleetAlarms } from './fleet-alarms.ts';
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
  /** Its RPO: counted in ClustersOverRpo past it, and in ClustersWithoutBackup without any backup. */
  rpoHours?: number;
  /** With drills: counted in ClustersWithoutRecentDrill after this many days without a successful one. */
  drillDays?: number;
  /** Its host runs the agent service: counted in ClustersWithoutArchiveHealth when it publishes nothing. */
  watchArchiving?: boolean;
}

/**
 * Clusters found by tags (config `discover`): report-backup-age finds them as start-fleet does (one
 * filtered DescribeInstances a run) and counts each against these objectives, its repository
 * `<prefix><cluster>/` in `bucket`.
 */
export interface BackupAgeDiscovered {
  bucket: IBucket;
  /** `discover.defaults.prefix`: empty, or segments each ending in `/`. */
  prefix: string;
  rpoHours: number;
  watchArchiving: boolean;
}

/** The objectives report-backup-age counts a cluster against (functions/report-backup-age.ts). */
interface Objectives {
  rpoSeconds?: number;
  drillDays?: number;
  watchArchiving: boolean;
}

function objectivesOf(c: BackupAgeCluster): Objectives {
  return {
    ...(c.rpoHours ? { rpoSeconds: c.rpoHours * 3600 } : {}),
    ...(c.drills && c.drillDays ? { drillDays: c.drillDays } : {}),
    watchArchiving: c.watchArchiving ?? false,
  };
}

/** Each objective's most common value among the clusters (absent: most clusters have none). */
function commonObjectives(all: Objectives[]): Objectives {
  const common = <K extends keyof Objectives>(key: K): Objectives[K] | undefined => {
    const counts = new Map<Objectives[K] | undefined, number>();
    for (const o of all) counts.set(o[key], (counts.get(o[key]) ?? 0) + 1);
    return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0];
  };
  const rpoSeconds = common('rpoSeconds');
  const drillDays = common('drillDays');
  return {
    ...(rpoSeconds ? { rpoSeconds } : {}),
    ...(drillDays ? { drillDays } : {}),
    watchArchiving: common('watchArchiving') ?? false,
  };
}

/**
 * What report-backup-age checks of each cluster, for the catalog's `freshness` (functions/report-backup-age.ts):
 * the objectives most clusters share said once, each cluster with those it does not share.
 */
export function freshnessOf(
  clusters: BackupAgeCluster[],
  discovered?: BackupAgeDiscovered,
): Record<string, unknown> {
  const defaults = commonObjectives(clusters.map(objectivesOf));
  return {
    defaults,
    // Where the catalog's `discover` (tag, repository) finds them, these are what they are judged by.
    ...(discovered
      ? { discovered: { rpoSeconds: discovered.rpoHours * 3600, watchArchiving: discovered.watchArchiving } }
      : {}),
    clusters: clusters.map((c) => {
      const objectives = objectivesOf(c);
      return {
        name: c.name,
        repository: c.repository,
        copiedToDr: c.copiedToDr,
        ...(c.drills ? { drills: true } : {}),
        ...(c.copiedToDr && c.drRpoMinutes ? { drRpoSeconds: c.drRpoMinutes * 60 } : {}),
        ...Object.fromEntries(
          Object.entries(objectives).filter(([key, value]) => defaults[key as keyof Objectives] !== value),
        ),
      };
    }),
  };
}

export class BackupAge extends Construct {
  readonly function: HandlerFunction;
  /** The alarms over the fleet counts it publishes (the copy-lag one is the AfterBackup construct's). */
  readonly alarms: Alarm[];

  /**
   * `catalog`: the catalog that holds `freshnessOf(clusters)` (a fleet's list passes Lambda's 4 KB at about
   * 30 clusters); the function reads it there.
   */
  constructor(
    scope: Construct,
    id: string,
    props: {
      clusters: BackupAgeCluster[];
      discovered?: BackupAgeDiscovered | undefined;
      catalog: ClusterCatalog;
      topic?: ITopic | undefined;
    },
  ) {
    const discovered = props.discovered;
    const watchArchiving = props.clusters.some((c) => c.watchArchiving) || discovered?.watchArchiving;
    super(scope, id);
    const fn = new HandlerFunction(this, 'ReportBackupAge', {
      handler: 'report-backup-age',
      description:
        "pgsnap: logs each cluster's newest backup's age and counts the clusters over their objectives",
      environment: {
        PGSNAP_METRICS_NAMESPACE: backupMetrics.namespace,
      },
      timeout: Duration.minutes(2),
    });
    this.function = fn;
    props.catalog.grantRead(fn);
    // PutMetricData has no resource-level permissions; the namespace condition holds it to pgsnap's.
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['cloudwatch:PutMetricData'],
        resources: ['*'],
        conditions: { StringEquals: { 'cloudwatch:namespace': backupMetrics.namespace } },
      }),
    );
    if (watchArchiving) {
      // GetMetricData has no resource-level permissions: it reads the hosts' archive lag (domain/host-metrics.ts).
      fn.addToRolePolicy(new PolicyStatement({ actions: ['cloudwatch:GetMetricData'], resources: ['*'] }));
    }
    // `prefix` is `<repository prefix><cluster>/`; by repository past a few dozen clusters (fleet-grants.ts).
    const scopesOf = (clusters: BackupAgeCluster[]) =>
      grantScopes(clusters, (c) => ({
        name: c.name,
        bucket: c.bucket,
        prefix: c.prefix.slice(0, c.prefix.length - c.name.length - 1),
      }));
    for (const { bucket, root, whose } of scopesOf(props.clusters)) {
      const backups = `${root}/backups/*`;
      bucket.grantRead(fn, backups);
      acknowledge(fn, {
        [`AwsSolutions-IAM5[Resource::${bucketFinding(bucket)}/${backups}]`]: `reads the manifests of ${whose} backups, under their prefix only`,
      });
    }
    for (const { bucket, root, whose } of scopesOf(props.clusters.filter((c) => c.drills))) {
      const restores = `${root}/restores/*`;
      bucket.grantRead(fn, restores);
      acknowledge(fn, {
        [`AwsSolutions-IAM5[Resource::${bucketFinding(bucket)}/${restores}]`]: `reads ${whose} restore records, for days since the last drill`,
      });
    }
    if (discovered) {
      // The running instances that carry the discovery tag (domain/backup/fleet.ts taggedClusters):
      // DescribeInstances has no resource-level permissions.
      fn.addToRolePolicy(new PolicyStatement({ actions: ['ec2:DescribeInstances'], resources: ['*'] }));
      const backups = `${discovered.prefix}*/backups/*`;
      discovered.bucket.grantRead(fn, backups);
      acknowledge(fn, {
        [`AwsSolutions-IAM5[Resource::${bucketFinding(discovered.bucket)}/${backups}]`]:
          'reads the manifests of the backups of clusters found by tags, whose names are known only at run time',
      });
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
      description: 'pgsnap: the age of the newest backups, and the fleet counts the alarms watch',
      schedule: ScheduleExpression.rate(Duration.minutes(15)),
      timeWindow: TimeWindow.flexible(Duration.minutes(5)),
      target: new LambdaInvoke(fn, { input: ScheduleTargetInput.fromObject({}), role }),
    });
    this.alarms = fleetAlarms(
      this,
      {
        rpo: props.clusters.some((c) => c.rpoHours) || discovered !== undefined,
        drills: props.clusters.some((c) => c.drills && c.drillDays),
        archiveHealth: watchArchiving ?? false,
      },
      props.topic,
    );
    acknowledge(role, {
      [`AwsSolutions-IAM5[Resource::${arnReference(fn)}:*]`]: wildcardReasons.lambdaVersions,
    });
  }
}
