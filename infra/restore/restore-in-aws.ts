/**
 * Restoring in AWS, as one construct for the source stack and the DR stack:
 * the restore SSM document (restore-document.ts), the restore Lambdas
 * (restore-functions.ts), the restore state machine, the scheduled drills and
 * their alarms (monitoring/drill-alarms.ts).
 */
import { Duration, TimeZone } from 'aws-cdk-lib';
import { PolicyStatement, Role } from 'aws-cdk-lib/aws-iam';
import { Schedule, ScheduleExpression, ScheduleTargetInput, TimeWindow } from 'aws-cdk-lib/aws-scheduler';
import { StepFunctionsStartExecution } from 'aws-cdk-lib/aws-scheduler-targets';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { maxHostStepSeconds } from '#domain/restore/host-time';
import { acknowledge } from '../guards/acknowledge.ts';
import { schedulerPrincipal } from '../guards/scheduler-principal.ts';
import { drillAlarms } from '../monitoring/drill-alarms.ts';
import { DrillKit } from './drill-kit.ts';
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
  /** What prepare-restore knows of the clusters (infra/config/cluster-catalog.ts). */
  catalog: ClusterCatalog;
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
   * absence, and with `rtoMinutes` the alarm on a drill slower than that.
   */
  private drills(props: RestoreProps): void {
    const clusters = props.clusters.filter((c) => c.drills);
    if (clusters.length === 0) return;
    const role = new Role(this, 'DrillSchedulerRole', {
      assumedBy: schedulerPrincipal(this),
      description: 'pgsnap drill schedules: start the restore state machine',
    });
    for (const cluster of clusters) {
      const drills = cluster.drills!;
      const kit =
        drills.kit &&
        new DrillKit(this, `${cluster.name}-drill-kit`, {
          environment: props.environment,
          cluster: cluster.name,
          bucket: cluster.bucket,
          prefix: cluster.prefix,
          key: cluster.key,
          restoreStateMachineArn: this.stateMachine.stateMachine.stateMachineArn,
          kit: drills.kit,
        });
      const launchTemplate = drills.launch.launchTemplate ?? kit!.launchTemplateName;
      new Schedule(this, `${cluster.name}-drill`, {
        description: `pgsnap restore drill of ${cluster.name}`,
        schedule: ScheduleExpression.expression(drills.schedule, TimeZone.of(drills.timezone)),
        timeWindow: TimeWindow.flexible(Duration.minutes(drills.flexibleWindowMinutes)),
        target: new StepFunctionsStartExecution(this.stateMachine.stateMachine, {
          input: ScheduleTargetInput.fromObject({
            cluster: cluster.name,
            backupId: 'latest',
            mode: 'drill',
            instance: { launch: { ...drills.launch, launchTemplate } },
            checks: drills.checks,
            ...(drills.initializationRate ? { initializationRate: drills.initializationRate } : {}),
            ...(drills.fullSpeedMinutes ? { fullSpeedMinutes: drills.fullSpeedMinutes } : {}),
          }),
          retryAttempts: 2,
          role,
        }),
      });
      drillAlarms(this, cluster.name, drills, props.topic);
    }
  }
}
