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
import { acknowledge } from '../guards/acknowledge.ts';
import { schedulerPrincipal } from '../guards/scheduler-principal.ts';
import { drillAlarms } from '../monitoring/drill-alarms.ts';
import { RestoreDocument } from './restore-document.ts';
import { ec2Wildcard, type RestoreCluster, restoreEc2Arn, restoreFunctions } from './restore-functions.ts';

export type { RestoreCluster } from './restore-functions.ts';

import { RestoreStateMachine } from './restore-state-machine.ts';
import type { RestoreFunctions } from './restore-steps.ts';

export interface RestoreProps {
  stateMachineName: string;
  clusters: RestoreCluster[];
  timeouts: { heartbeatSeconds: number };
  /** How long the host may take to mount, recover and check (default 4 hours). */
  restoreSeconds?: number;
  /** Where the drill alarms notify (the stack's alarm topic); none in the DR stack. */
  topic?: ITopic;
}

export class Restore extends Construct {
  readonly stateMachine: RestoreStateMachine;
  readonly document: RestoreDocument;
  readonly functions: RestoreFunctions;

  constructor(scope: Construct, id: string, props: RestoreProps) {
    super(scope, id);
    this.functions = restoreFunctions(this, props.clusters);

    this.document = new RestoreDocument(this, 'Document');
    this.stateMachine = new RestoreStateMachine(this, 'StateMachine', {
      stateMachineName: props.stateMachineName,
      functions: this.functions,
      host: {
        documentName: this.document.documentName,
        timeouts: {
          heartbeatSeconds: props.timeouts.heartbeatSeconds,
          hostCommandSeconds: props.restoreSeconds ?? 14_400,
        },
      },
      restoreSeconds: props.restoreSeconds ?? 14_400,
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
      new Schedule(this, `${cluster.name}-drill`, {
        description: `pgsnap restore drill of ${cluster.name}`,
        schedule: ScheduleExpression.expression(drills.schedule, TimeZone.of(drills.timezone)),
        timeWindow: TimeWindow.flexible(Duration.minutes(drills.flexibleWindowMinutes)),
        target: new StepFunctionsStartExecution(this.stateMachine.stateMachine, {
          input: ScheduleTargetInput.fromObject({
            cluster: cluster.name,
            backupId: 'latest',
            mode: 'drill',
            instance: { launch: drills.launch },
            checks: drills.checks,
          }),
          retryAttempts: 2,
          role,
        }),
      });
      drillAlarms(this, cluster.name, drills, props.topic);
    }
  }
}
