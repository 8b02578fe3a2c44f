/**
 * EventBridge Scheduler schedules, one per configured cluster schedule, each
 * with its flexible time window so that a fleet's backups do not start in the
 * same second. Each invokes the start-backup Lambda with Scheduler's
 * `<aws.scheduler.scheduled-time>`; the Lambda names the execution after the
 * cluster and that time, so that a second delivery (Scheduler delivers at
 * least once) is refused by Step Functions itself.
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
    if (props.fleet) this.fleetSchedules(props.fleet, props.stateMachine, role);
    for (const cluster of props.clusters) {
      for (const schedule of cluster.schedules) {
        new Schedule(this, `${cluster.name}-${schedule.name}`, {
          description: `pgsnap backup of ${cluster.name} (${schedule.name})`,
          schedule: ScheduleExpression.expression(schedule.expression, TimeZone.of(schedule.timezone)),
          timeWindow: TimeWindow.flexible(Duration.minutes(schedule.flexibleWindowMinutes)),
          target: new LambdaInvoke(this.startBackup, {
            input: ScheduleTargetInput.fromObject({
              cluster: cluster.name,
              label: schedule.label,
              trigger: 'schedule',
              scheduledTime: ContextAttribute.scheduledTime,
            }),
            retryAttempts: 2,
            role,
          }),
        });
      }
    }
  }

  /** One schedule per fleet cadence, invoking start-fleet (domain/backup/fleet.ts). */
  private fleetSchedules(
    fleet: NonNullable<BackupSchedulesProps['fleet']>,
    stateMachine: IStateMachine,
    role: Role,
  ): void {
    if (fleet.schedules.length === 0) return;
    const startFleet = new HandlerFunction(this, 'StartFleet', {
      handler: 'start-fleet',
      description: "pgsnap: starts a backup of every cluster found by its host's tags, one execution each",
      environment: { PGSNAP_STATE_MACHINE_ARN: stateMachine.stateMachineArn },
      timeout: Duration.minutes(10),
    });
    stateMachine.grantStartExecution(startFleet);
    fleet.catalog.grantRead(startFleet);
    // DescribeInstances has no resource-level permissions in EC2.
    startFleet.addToRolePolicy(new PolicyStatement({ actions: ['ec2:DescribeInstances'], resources: ['*'] }));
    acknowledge(role, {
      [`AwsSolutions-IAM5[Resource::${arnReference(startFleet)}:*]`]: wildcardReasons.lambdaVersions,
    });
    for (const schedule of fleet.schedules) {
      new Schedule(this, `fleet-${schedule.name}`, {
        description: `pgsnap backup of every tagged cluster (${schedule.name})`,
        schedule: ScheduleExpression.expression(schedule.expression, TimeZone.of(schedule.timezone)),
        timeWindow: TimeWindow.flexible(Duration.minutes(schedule.flexibleWindowMinutes)),
        target: new LambdaInvoke(startFleet, {
          input: ScheduleTargetInput.fromObject({
            label: schedule.label,
            scheduledTime: ContextAttribute.scheduledTime,
          }),
          retryAttempts: 2,
          role,
        }),
      });
    }
  }
}
