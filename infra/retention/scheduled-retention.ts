/**
 * Retention of one account and region: the apply-retention Lambda with its
 * own role, which may delete only the snapshots of this region tagged with a
 * retained cluster (the code also checks each snapshot's tags against the
 * manifest, domain/ebs/retention.ts) and only the current objects under the
 * retained clusters' prefixes (never an object version, and it writes
 * nothing); one EventBridge Scheduler schedule per cadence, which invokes
 * start-retention, which invokes apply-retention once per cluster retained on
 * that cadence (functions/start-retention.ts); and an alarm when a run fails.
 * Each cluster's policy and cadence are in the stack's cluster catalog
 * (catalogRetention), not in a Lambda environment, so that a fleet of any
 * size is a few schedules and two functions. The source stack makes one over
 * the source repository (its alarm goes to the stack's topic); the DR stack
 * another over the DR repository, with its own catalog, so that the DR copies
 * are deleted by the DR account alone.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import type { Alarm } from 'aws-cdk-lib/aws-cloudwatch';
import { PolicyStatement, Role } from 'aws-cdk-lib/aws-iam';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Schedule, ScheduleExpression, ScheduleTargetInput, TimeWindow } from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke } from 'aws-cdk-lib/aws-scheduler-targets';
import { Construct } from 'constructs';
import type { CatalogRetention } from '#domain/backup/scheduled-retention';
import { snapshotTags } from '#domain/ebs/snapshots';
import type { ClusterCatalog } from '../config/cluster-catalog.ts';
import type { RetentionConfig } from '../dr/dr-config.ts';
import { acknowledge, arnReference, bucketFinding, nagArn, wildcardReasons } from '../guards/acknowledge.ts';
import { clusterTagCondition, type GrantScope, grantScopes } from '../guards/fleet-grants.ts';
import { schedulerPrincipal } from '../guards/scheduler-principal.ts';
import { HandlerFunction } from '../lambda/handler-function.ts';
import { retentionFailedAlarm } from '../monitoring/retention-alarm.ts';

/** A cluster's retention as its side's catalog holds it: that side's policy, and its cadence. */
export function catalogRetention(retention: RetentionConfig, side: 'source' | 'DR'): CatalogRetention {
  const policy = side === 'DR' && retention.dr ? retention.dr : retention;
  return {
    ...(policy.keepLast !== undefined ? { keepLast: policy.keepLast } : {}),
    ...(policy.keepDays !== undefined ? { keepDays: policy.keepDays } : {}),
    ...(policy.thin !== undefined ? { thin: policy.thin } : {}),
    schedule: retention.schedule,
  };
}

/** When a cluster's (or the discovered clusters') retention runs. */
interface Cadence {
  /** An EventBridge Scheduler expression. */
  schedule: string;
  /** Scheduler's flexible time window, in minutes. */
  flexibleWindowMinutes: number;
}

export interface RetainedCluster extends Cadence {
  name: string;
  /** The bucket of the repository retention applies to, and its prefix (`<prefix><cluster>/`). */
  bucket: IBucket;
  prefix: string;
}

export interface RetentionProps {
  clusters: RetainedCluster[];
  /** Clusters found by tags (source side only): every cluster directory under `prefix` in `bucket`. */
  discovered?: (Cadence & { bucket: IBucket; prefix: string }) | undefined;
  /** The side's catalog, which holds each cluster's policy and cadence (catalogRetention). */
  catalog: ClusterCatalog;
  /** Where the repository is: for the functions' descriptions. */
  side: 'source' | 'DR';
}

export class Retention extends Construct {
  readonly function: HandlerFunction;
  /** The function each retention schedule invokes: apply-retention, once per cluster on its cadence. */
  readonly start: HandlerFunction;
  /** Retention failed (a run that threw: a repository or EC2 it could not reach, a delete refused). */
  readonly failedAlarm: Alarm;

  constructor(scope: Construct, id: string, props: RetentionProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const { discovered } = props;
    const names = props.clusters.map((c) => c.name);
    this.function = new HandlerFunction(this, 'ApplyRetention', {
      handler: 'apply-retention',
      description: `pgsnap: deletes ${props.side} backups and WAL past the cluster's retention`,
      timeout: Duration.minutes(15),
    });
    const fn = this.function;
    props.catalog.grantRead(fn);
    const tag = `aws:ResourceTag/${snapshotTags.cluster}`;
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['ec2:DeleteSnapshot'],
        resources: [
          stack.formatArn({ service: 'ec2', account: '', resource: 'snapshot', resourceName: '*' }),
        ],
        // A discovered cluster may have any name: any value of the cluster tag, as past 30 listed clusters.
        conditions: discovered ? { StringLike: { [tag]: '?*' } } : clusterTagCondition(tag, names),
      }),
    );
    // The tags of the snapshots a manifest names; after a failed delete, whether the snapshot is locked.
    // Both are Describe calls with no resource-level permissions.
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['ec2:DescribeSnapshots', 'ec2:DescribeLockedSnapshots'],
        resources: ['*'],
      }),
    );
    acknowledge(fn, {
      [`AwsSolutions-IAM5[Resource::${nagArn(this, 'ec2', 'snapshot/*', { account: false })}]`]:
        'snapshot ids are not known in advance; only snapshots tagged with a retained cluster can be deleted',
      'AwsSolutions-IAM5[Action::s3:GetObject*]': 'CDK grantRead: reads of the retained clusters’ objects',
      'AwsSolutions-IAM5[Action::s3:GetBucket*]': 'CDK grantRead: bucket location and settings, read only',
      'AwsSolutions-IAM5[Action::s3:List*]': 'CDK grantRead: listing the catalog and the WAL',
    });
    // Reads, and deletes the current object: never an old version (which the versioned bucket keeps, under
    // Object Lock when asked, until its noncurrent-version expiry).
    // By repository prefix past a few dozen clusters (infra/guards/fleet-grants.ts).
    const scopes: GrantScope[] = grantScopes(props.clusters, (c) => c);
    if (discovered) {
      scopes.push({
        bucket: discovered.bucket,
        root: `${discovered.prefix}*`,
        whose: 'the clusters’ found by tags',
      });
    }
    for (const { bucket, root, whose } of scopes) {
      const objects = `${root}/*`;
      bucket.grantRead(fn, objects);
      fn.addToRolePolicy(
        new PolicyStatement({ actions: ['s3:DeleteObject'], resources: [bucket.arnForObjects(objects)] }),
      );
      acknowledge(fn, {
        [`AwsSolutions-IAM5[Resource::${bucketFinding(bucket)}/${objects}]`]: `the backups and WAL of ${whose} (${props.side}), under their prefix only`,
      });
    }

    this.start = new HandlerFunction(this, 'StartRetention', {
      handler: 'start-retention',
      description: `pgsnap: starts ${props.side} retention of every cluster on the schedule's cadence`,
      environment: { PGSNAP_APPLY_RETENTION_FUNCTION: fn.functionName },
      timeout: Duration.minutes(5),
    });
    props.catalog.grantRead(this.start);
    fn.grantInvoke(this.start);
    acknowledge(this.start, {
      [`AwsSolutions-IAM5[Resource::${arnReference(fn)}:*]`]: wildcardReasons.lambdaVersions,
    });
    if (discovered) {
      // Which clusters were found by tags: one listing by directory of their prefix, nothing read.
      this.start.addToRolePolicy(
        new PolicyStatement({
          actions: ['s3:ListBucket'],
          resources: [discovered.bucket.bucketArn],
          // At the bucket's root (no prefix) a listing names no `s3:prefix`, which no condition could match.
          ...(discovered.prefix ? { conditions: { StringLike: { 's3:prefix': discovered.prefix } } } : {}),
        }),
      );
    }

    const schedulerRole = new Role(this, 'SchedulerRole', {
      assumedBy: schedulerPrincipal(this),
      description: `pgsnap: lets EventBridge Scheduler run ${props.side} retention`,
    });
    for (const [index, cadence] of cadencesOf(props).entries()) {
      new Schedule(this, `Cadence${index}`, {
        description: `pgsnap ${props.side} retention of ${cadence.whom}`.slice(0, 512),
        schedule: ScheduleExpression.expression(cadence.schedule),
        timeWindow: TimeWindow.flexible(Duration.minutes(cadence.flexibleWindowMinutes)),
        target: new LambdaInvoke(this.start, {
          input: ScheduleTargetInput.fromObject({ schedule: cadence.schedule }),
          role: schedulerRole,
        }),
      });
    }
    acknowledge(schedulerRole, {
      [`AwsSolutions-IAM5[Resource::${arnReference(this.start)}:*]`]: wildcardReasons.lambdaVersions,
    });
    this.failedAlarm = retentionFailedAlarm(this, { apply: fn, start: this.start }, props.side);
  }
}

/**
 * One schedule per cadence (schedule expression), in the order first met: the smallest flexible window of
 * its clusters, and whom it retains, in words.
 */
function cadencesOf(props: RetentionProps): Array<Cadence & { whom: string }> {
  const cadences = new Map<string, { window: number; names: string[]; discovered: boolean }>();
  const add = (cadence: Cadence, name?: string) => {
    const found = cadences.get(cadence.schedule) ?? {
      window: cadence.flexibleWindowMinutes,
      names: [],
      discovered: false,
    };
    found.window = Math.min(found.window, cadence.flexibleWindowMinutes);
    if (name) found.names.push(name);
    else found.discovered = true;
    cadences.set(cadence.schedule, found);
  };
  for (const cluster of props.clusters) add(cluster, cluster.name);
  if (props.discovered) add(props.discovered);
  return [...cadences].map(([schedule, { window, names, discovered }]) => {
    const listed = names.length > 10 ? `${names.length} listed clusters` : names.join(', ');
    const found = discovered ? 'every cluster found by tags' : '';
    return {
      schedule,
      flexibleWindowMinutes: window,
      whom: [listed, found].filter(Boolean).join(' and '),
    };
  });
}
