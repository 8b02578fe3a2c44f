/**
 * The backup state machine, assembled from its fragments: the backup
 * (backup-steps.ts), whose every failure after begin takes the one cleanup
 * path (cleanup-steps.ts), and after a completed backup the DR copy and
 * retention (after-backup.ts) where the configuration has them. The
 * state names are in state-names.ts, the metrics and events in
 * metrics-and-events.ts.
 */
import { ArnFormat, Stack } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { type State, type StateMachine, Succeed } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { acknowledge, nagArn } from '../guards/acknowledge.ts';
import { pgsnapStateMachine } from '../steps.ts';
import { BackupSteps } from './backup-steps.ts';
import { CleanupSteps } from './cleanup-steps.ts';
import { states } from './state-names.ts';

export interface BackupStateMachineProps {
  stateMachineName: string;
  functions: {
    prepareBackup: IFunction;
    createSnapshots: IFunction;
    checkSnapshots: IFunction;
    deleteSnapshots: IFunction;
    recordBackup: IFunction;
    acquireSnapshotBudget: IFunction;
    releaseSnapshotBudget: IFunction;
  };
  /** The SSM Command document that runs the agent. */
  documentName: string;
  timeouts: { hostCommandSeconds: number; heartbeatSeconds: number };
  /** Steps run once the backup is completed and announced (DR copies, retention), ending in `done`. */
  afterCompleted?: (scope: Construct, done: Succeed) => State;
}

export class BackupStateMachine extends Construct {
  readonly stateMachine: StateMachine;

  constructor(scope: Construct, id: string, props: BackupStateMachineProps) {
    super(scope, id);
    const { functions } = props;
    const host = { documentName: props.documentName, timeouts: props.timeouts };
    const done = new Succeed(this, states.completed);
    const cleanup = new CleanupSteps(this, 'Cleanup', { functions, host });
    const definition = new BackupSteps(this, 'Backup', {
      functions,
      host,
      cleanup,
      next: props.afterCompleted ? props.afterCompleted(this, done) : done,
    });

    this.stateMachine = pgsnapStateMachine(this, {
      stateMachineName: props.stateMachineName,
      definition,
      comment:
        'pgsnap: a consistent snapshot backup of one PostgreSQL cluster; the backupId is the execution name, or is derived from the name and start time',
      counters: 'the backup counters',
      functions: Object.values(props.functions),
    });
    acknowledge(this, {
      [`AwsSolutions-IAM5[Resource::${nagArn(this, 'ec2', 'instance/*')}]`]:
        'ssm:SendCommand to a cluster selected by tags is allowed on instances carrying exactly those tags (condition)',
    });
  }

  /** The ARN a state machine of this name will have, known before it exists (breaks IAM cycles). */
  static arnFor(scope: Construct, stateMachineName: string): string {
    return Stack.of(scope).formatArn({
      service: 'states',
      resource: 'stateMachine',
      resourceName: stateMachineName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
  }
}
