/**
 * Retention of one account and region: the apply-retention Lambda with its
 * own role, which may delete only the snapshots of this region tagged with a
 * retained cluster (the code also checks each snapshot's tags against the
 * manifest, domain/ebs/retention.ts) and only the current objects under the
 * retained clusters' prefixes (never an object version, and it writes
 * nothing), and one EventBridge Scheduler schedule
 * per cluster, and an alarm when a run fails. The source stack makes one over
 * the source repository (its alarm goes to the stack's topic); the DR
 * stack another over the DR repository, so that the DR copies are deleted by
 * the DR account alone.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import type { Alarm } from 'aws-cdk-lib/aws-cloudwatch';
import { PolicyStatement, Role } from 'aws-cdk-lib/aws-iam';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Schedule, ScheduleExpression, ScheduleTargetInput, TimeWindow } from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke } from 'aws-cdk-lib/aws-scheduler-targets';
import { Construct } from 'constructs';
import type { RetentionPolicy } from '#domain/backup/retention';
import { snapshotTags } from '#domain/ebs/snapshots';
import { acknowledge, arnReference, bucketFinding, nagArn, wildcardReasons } from '../guards/acknowledge.ts';
import { clusterTagCondition, grantScopes } from '../guards/fleet-grants.ts';
import { schedulerPrincipal } from '../guards/scheduler-principal.ts';
import { HandlerFunction } from '../lambda/handler-function.ts';
import { retentionFailedAlarm } from '../monitoring/retention-alarm.ts';

export interface RetainedCluster {
  name: string;
  policy: RetentionPolicy;
  /** An EventBridge Scheduler expression. */
  schedule: string;
  /** Scheduler's flexible time window, in minutes. */
  flexibleWindowMinutes: number;
  /** The repository retention applies to, as the agent names it, and its bucket. */
  repositoryUrl: string;
  bucket: IBucket;
  /** The cluster's objects in the bucket: `<prefix><cluster>/*`. */
  objects: string;
}

export interface RetentionProps {
  clusters: RetainedCluster[];
  /** Where the repository is: for the function's description. */
  side: 'source' | 'DR';
}

export class Retention extends Construct {
  readonly function: HandlerFunction;
  /** Retention failed (a run that threw: a repository or EC2 it could not reach, a delete refused). */
  readonly failedAlarm: Alarm;

  constructor(scope: Construct, id: string, props: RetentionProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const names = props.clusters.map((c) => c.name);
    this.function = new HandlerFunction(this, 'ApplyRetention', {
      handler: 'apply-retention',
      description: `pgsnap: deletes ${props.side} backups and WAL past the cluster's retention`,
      environment: {
        PGSNAP_RETENTION: JSON.stringify(
          Object.fromEntries(
            props.clusters.map((c) => [c.name, { keepLast: c.policy.keepLast, keepDays: c.policy.keepDays }]),
          ),
        ),
      },
      timeout: Duration.minutes(15),
    });
    const fn = this.function;
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['ec2:DeleteSnapshot'],
        resources: [
          stack.formatArn({ service: 'ec2', account: '', resource: 'snapshot', resourceName: '*' }),
        ],
        conditions: clusterTagCondition(`aws:ResourceTag/${snapshotTags.cluster}`, names),
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
    // By repository prefix past a few dozen clusters (infra/guards/fleet-grants.ts); `objects` is `<prefix><cluster>/*`.
    const scopes = grantScopes(props.clusters, (c) => ({
      name: c.name,
      bucket: c.bucket,
      prefix: c.objects.slice(0, c.objects.length - c.name.length - 2),
    }));
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

    const schedulerRole = new Role(this, 'SchedulerRole', {
      assumedBy: schedulerPrincipal(this),
      description: `pgsnap: lets EventBridge Scheduler run ${props.side} retention`,
    });
    for (const cluster of props.clusters) {
      new Schedule(this, `${cluster.name}-retention`, {
        description: `pgsnap ${props.side} retention of ${cluster.name}`,
        schedule: ScheduleExpression.expression(cluster.schedule),
        timeWindow: TimeWindow.flexible(Duration.minutes(cluster.flexibleWindowMinutes)),
        target: new LambdaInvoke(fn, {
          input: ScheduleTargetInput.fromObject({ cluster: cluster.name, repository: cluster.repositoryUrl }),
          role: schedulerRole,
        }),
      });
    }
    acknowledge(schedulerRole, {
      [`AwsSolutions-IAM5[Resource::${arnReference(fn)}:*]`]: wildcardReasons.lambdaVersions,
    });
    this.failedAlarm = retentionFailedAlarm(this, fn, props.side);
  }
}
