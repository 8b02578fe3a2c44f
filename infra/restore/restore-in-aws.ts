/**
 * Restoring in AWS, as one construct for the source stack and the DR stack:
 * the restore SSM document (restore-document.ts), the restore Lambdas
 * (restore-functions.ts), the restore state machine, the scheduled drills
 * (started by the start-drill Lambda), each cluster's drill kit when it asks
 * for one (drill-kit.ts, holding the cluster's restore target policy), and
 * the drills' alarms (monitoring/drill-alarms.ts).
 */
import { Duration, TimeZone } from 'aws-cdk-lib';
import { type ManagedPolicy, PolicyStatement, Role } from 'aws-cdk-lib/aws-iam';
import {
  ContextAttribute,
  Schedule,
  ScheduleExpression,
  ScheduleTargetInput,
  TimeWindow,
} from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke } from 'aws-cdk-lib/aws-scheduler-targets';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { maxHostStepSeconds } from '#domain/restore/host-time';
import { acknowledge, arnReference, wildcardReasons } from '../guards/acknowledge.ts';
import { schedulerPrincipal } from '../guards/scheduler-principal.ts';
import { HandlerFunction } from '../lambda/handler-function.ts';
import { drillAlarms } from '../monitoring/drill-alarms.ts';
import { DrillKit } from './drill-kit.ts';
import { drillExpression } from './drill-schedule.ts';
import { RestoreDocument } from './restore-document.ts';
import { ec2Wildcard, type RestoreCluster, restoreEc2Arn, restoreFunctions } from './restore-functions.ts';

export type { RestoreCluster } from './restore-functions.ts';

import type { ClusterCatalog } from '../config/cluster-catalog.ts';
import { RestoreStateMachine } from './restore-state-machine.ts';
import type { RestoreFunctions } from './restore-steps.ts';

export interface RestoreProps {
  stateMachineName: string;
  clusters: RestoreCluster[];
  timeouts: { heartbeatSeconds: number };
  /** Where the drill alarms notify (the stack's alarm topic). */
  topic?: ITopic;
  /** Names the drill kits: `pgsnap-<environment>-drill-<cluster>`. */
  environment: string;
  /**
   * Each cluster's restore target policy (infra/guards/restore-target-policy.ts), by cluster name: what a
   * drill kit's instance role holds, so that one definition says what a restore target may do.
   */
  targetPolicies?: ReadonlyMap<string, ManagedPolicy>;
  /** What prepare-restore knows of the clusters (infra/config/cluster-catalog.ts). */
  catalog: ClusterCatalog;
  /** Where a cluster's drill kit, drill schedule and drill alarms go (infra/guards/cluster-shards.ts); none: here. */
  scopeOf?: ((cluster: string, here: Construct) => Construct) | undefined;
}

export class Restore extends Construct {
  readonly stateMachine: RestoreStateMachine;
  readonly document: RestoreDocument;
  readonly functions: RestoreFunctions;

  constructor(scope: Construct, id: string, props: RestoreProps) {
    super(scope, id);
    this.functions = restoreFunctions(this, props.clusters, props.catalog);

    this.document = new RestoreDocument(this, 'Document');
    this.stateMachine = new RestoreStateMachine(this, 'StateMachine', {
      stateMachineName: props.stateMachineName,
      functions: this.functions,
      host: {
        documentName: this.document.documentName,
        // The host step's own timeout comes from the plan (domain/restore/host-time.ts).
        timeouts: {
          heartbeatSeconds: props.timeouts.heartbeatSeconds,
          hostCommandSeconds: maxHostStepSeconds,
        },
      },
    });
    // The restore document runs nothing but a recorded restore and its teardown, on any instance it is sent to.
    this.stateMachine.stateMachine.addToRolePolicy(
      new PolicyStatement({ actions: ['ssm:SendCommand'], resources: [restoreEc2Arn(this, 'instance')] }),
    );
    acknowledge(this.stateMachine, {
      [ec2Wildcard(this, 'instance')]:
        'the restore document (restore, teardown of one recorded restore) may run on the instance the operator names or the restore launches',
    });

    this.drills(props);
  }

  /**
   * Per cluster with `drills`: a schedule that starts a drill of the latest backup, the alarm on its
   * absence, and with `rtoMinutes` the alarm on a drill slower than that. Each schedule invokes the
   * start-drill Lambda with Scheduler's `<aws.scheduler.scheduled-time>`, which names the execution after
   * the cluster and that time (domain/restore/execution.ts): Scheduler delivers at least once, and a second
   * delivery is refused by Step Functions itself rather than drilling twice.
   */
  private drills(props: RestoreProps): void {
    const clusters = props.clusters.filter((c) => c.drills);
    if (clusters.length === 0) return;
    const startDrill = new HandlerFunction(this, 'StartDrill', {
      handler: 'start-drill',
      description:
        'pgsnap: starts a scheduled drill execution named after the cluster and the scheduled time',
      environment: { PGSNAP_RESTORE_STATE_MACHINE_ARN: this.stateMachine.stateMachine.stateMachineArn },
    });
    this.stateMachine.stateMachine.grantStartExecution(startDrill);
    const role = new Role(this, 'DrillSchedulerRole', {
      assumedBy: schedulerPrincipal(this),
      description: 'pgsnap drill schedules: invoke the start-drill Lambda',
    });
    acknowledge(role, {
      [`AwsSolutions-IAM5[Resource::${arnReference(startDrill)}:*]`]: wildcardReasons.lambdaVersions,
    });
    for (const cluster of clusters) {
      const drills = cluster.drills!;
      const scope = props.scopeOf?.(cluster.name, this) ?? this;
      let launchTemplate = drills.launch.launchTemplate;
      if (!launchTemplate) {
        const policy = props.targetPolicies?.get(cluster.name);
        if (!drills.kit || !policy) {
          throw new Error(
            `the drills of ${cluster.name} name no launch template, and no drill kit can be made (drills.kit and its restore target policy)`,
          );
        }
        launchTemplate = new DrillKit(scope, `${cluster.name}-drill-kit`, {
          environment: props.environment,
          cluster: cluster.name,
          policy,
          kit: drills.kit,
        }).launchTemplateName;
      }
      new Schedule(scope, `${cluster.name}-drill`, {
        description: `pgsnap restore drill of ${cluster.name}`,
        schedule: ScheduleExpression.expression(
          drillExpression(cluster.name, drills.schedule),
          TimeZone.of(drills.timezone),
        ),
        timeWindow: TimeWindow.flexible(Duration.minutes(drills.flexibleWindowMinutes)),
        target: new LambdaInvoke(startDrill, {
          input: ScheduleTargetInput.fromObject({
            cluster: cluster.name,
            backupId: 'latest',
            mode: 'drill',
            instance: { launch: { ...drills.launch, launchTemplate } },
            checks: drills.checks,
            ...(drills.initializationRate ? { initializationRate: drills.initializationRate } : {}),
            ...(drills.fullSpeedMinutes ? { fullSpeedMinutes: drills.fullSpeedMinutes } : {}),
            scheduledTime: ContextAttribute.scheduledTime,
          }),
          retryAttempts: 2,
          role,
        }),
      });
      drillAlarms(scope, cluster.name, drills, props.topic);
    }
  }
}
