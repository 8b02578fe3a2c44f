/**
 * EventBridge Scheduler schedules, one per configured cluster schedule, each
 * with its flexible time window so that a fleet's backups do not start in the
 * same second. Each invokes the start-backup Lambda with Scheduler's
 * `<aws.scheduler.scheduled-time>`; the Lambda names the execution after the
 * cluster and that time, so that a second delivery (Scheduler delivers at
 * least once) is refused by Step Functions itself.
 *
 * A cadence that several listed clusters share (the same expression, time
 * zone, label and window) is one schedule per `clustersPerSchedule` of them,
 * invoking start-fleet with their names, as a discovered fleet's cadence is:
 * a schedule per cluster carried 500 listed clusters past CloudFormation's
 * 500 resources per stack. A cadence of one cluster keeps its own schedule.
 */
import { Duration, TimeZone } from 'aws-cdk-lib';
import { PolicyStatement, Role } from 'aws-cdk-lib/aws-iam';
import {
  ContextAttribute,
  Schedule,
  ScheduleExpression,
  ScheduleTargetInput,
  TimeWindow,
} from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke } from 'aws-cdk-lib/aws-scheduler-targets';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { ClusterCatalog } from '../config/cluster-catalog.ts';
import type { ClusterConfig, ScheduleConfig } from '../config/config.ts';
import { acknowledge, arnReference, wildcardReasons } from '../guards/acknowledge.ts';
import { schedulerPrincipal } from '../guards/scheduler-principal.ts';
import { HandlerFunction } from '../lambda/handler-function.ts';

export interface BackupSchedulesProps {
  clusters: ClusterConfig[];
  stateMachine: IStateMachine;
  /** Clusters found by tags: one schedule per cadence, each starting every tagged cluster's backup. */
  fleet?: { schedules: ScheduleConfig[]; catalog: ClusterCatalog } | undefined;
}

/** The most clusters one grouped schedule names: its input stays a few KB (names are at most 63 characters). */
export const clustersPerSchedule = 100;

/** The schedules of listed clusters, grouped by what a delivery needs to know: one cadence each. */
export function cadencesOf(
  clusters: ClusterConfig[],
): Array<{ schedule: ScheduleConfig; clusters: string[] }> {
  const cadences = new Map<string, { schedule: ScheduleConfig; clusters: string[] }>();
  for (const cluster of clusters) {
    for (const schedule of cluster.schedules) {
      const key = JSON.stringify([
        schedule.expression,
        schedule.timezone,
        schedule.label,
        schedule.flexibleWindowMinutes,
      ]);
      const cadence = cadences.get(key) ?? { schedule, clusters: [] };
      cadence.clusters.push(cluster.name);
      cadences.set(key, cadence);
    }
  }
  return [...cadences.values()];
}

export class BackupSchedules extends Construct {
  readonly startBackup: HandlerFunction;

  constructor(scope: Construct, id: string, props: BackupSchedulesProps) {
    super(scope, id);
    this.startBackup = new HandlerFunction(this, 'StartBackup', {
      handler: 'start-backup',
      description:
        'pgsnap: starts a scheduled backup execution named after the cluster and the scheduled time',
      environment: { PGSNAP_STATE_MACHINE_ARN: props.stateMachine.stateMachineArn },
    });
    props.stateMachine.grantStartExecution(this.startBackup);
    const role = new Role(this, 'SchedulerRole', {
      assumedBy: schedulerPrincipal(this),
      description: 'pgsnap schedules: invoke the start-backup Lambda',
    });
    acknowledge(role, {
      [`AwsSolutions-IAM5[Resource::${arnReference(this.startBackup)}:*]`]: wildcardReasons.lambdaVersions,
    });
    const cadences = cadencesOf(props.clusters);
    const startFleet =
      props.fleet?.schedules.length || cadences.some((c) => c.clusters.length > 1)
        ? this.startFleet(props.stateMachine, role, props.fleet)
        : undefined;
    if (props.fleet && startFleet) this.fleetSchedules(props.fleet.schedules, startFleet, role);
    for (const { schedule, clusters } of cadences) {
      if (clusters.length === 1 || !startFleet) {
        const [cluster] = clusters as [string];
        scheduleInvoking(this, `${cluster}-${schedule.name}`, {
          description: `pgsnap backup of ${cluster} (${schedule.name})`,
          schedule,
          target: this.startBackup,
          input: { cluster, label: schedule.label, trigger: 'schedule' },
          role,
        });
        continue;
      }
      for (let first = 0; first < clusters.length; first += clustersPerSchedule) {
        const group = clusters.slice(first, first + clustersPerSchedule);
        // Named after the group's first cluster: adding a cluster to a cadence does not rename the others.
        scheduleInvoking(this, `${group[0]}-${schedule.name}-group`, {
          description: `pgsnap backup of ${group.length} clusters, ${group[0]} to ${group.at(-1)} (${schedule.name})`,
          schedule,
          target: startFleet,
          input: { label: schedule.label, clusters: group },
          role,
        });
      }
    }
  }

  /** The start-fleet Lambda (domain/backup/fleet.ts): the catalog and the instances only for discovery. */
  private startFleet(
    stateMachine: IStateMachine,
    role: Role,
    fleet: BackupSchedulesProps['fleet'],
  ): HandlerFunction {
    const startFleet = new HandlerFunction(this, 'StartFleet', {
      handler: 'start-fleet',
      description:
        'pgsnap: starts the backups of a cadence, one execution per cluster (listed or found by tags)',
      environment: { PGSNAP_STATE_MACHINE_ARN: stateMachine.stateMachineArn },
      timeout: Duration.minutes(10),
    });
    stateMachine.grantStartExecution(startFleet);
    acknowledge(role, {
      [`AwsSolutions-IAM5[Resource::${arnReference(startFleet)}:*]`]: wildcardReasons.lambdaVersions,
    });
    if (fleet?.schedules.length) {
      fleet.catalog.grantRead(startFleet);
      // DescribeInstances has no resource-level permissions in EC2.
      startFleet.addToRolePolicy(
        new PolicyStatement({ actions: ['ec2:DescribeInstances'], resources: ['*'] }),
      );
    }
    return startFleet;
  }

  /** One schedule per fleet cadence, invoking start-fleet (domain/backup/fleet.ts). */
  private fleetSchedules(schedules: ScheduleConfig[], startFleet: HandlerFunction, role: Role): void {
    for (const schedule of schedules) {
      scheduleInvoking(this, `fleet-${schedule.name}`, {
        description: `pgsnap backup of every tagged cluster (${schedule.name})`,
        schedule,
        target: startFleet,
        input: { label: schedule.label },
        role,
      });
    }
  }
}

/**
 * A Scheduler schedule of `schedule`'s cadence and flexible window invoking
 * `target` with `input` and the scheduled time (which names the execution:
 * a duplicate delivery is refused by Step Functions).
 */
function scheduleInvoking(
  scope: Construct,
  id: string,
  props: {
    description: string;
    schedule: ScheduleConfig;
    target: HandlerFunction;
    input: Record<string, unknown>;
    role: Role;
  },
): Schedule {
  const { schedule } = props;
  return new Schedule(scope, id, {
    description: props.description,
    schedule: ScheduleExpression.expression(schedule.expression, TimeZone.of(schedule.timezone)),
    timeWindow: TimeWindow.flexible(Duration.minutes(schedule.flexibleWindowMinutes)),
    target: new LambdaInvoke(props.target, {
      input: ScheduleTargetInput.fromObject({
        ...props.input,
        scheduledTime: ContextAttribute.scheduledTime,
      }),
      retryAttempts: 2,
      role: props.role,
    }),
  });
}
