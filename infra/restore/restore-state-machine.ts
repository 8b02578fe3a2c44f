/**
 * The restore state machine, assembled from its fragments: the restore and a
 * drill's teardown (restore-steps.ts), whose every failure takes the one
 * cleanup path (cleanup-steps.ts). State names are in
 * state-names.ts. Deployed in the source stack and in the DR stack,
 * where it restores from the DR copies with the DR account's rights alone.
 */
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { type HostCommands, pgsnapStateMachine } from '../steps.ts';
import { RestoreCleanupSteps } from './cleanup-steps.ts';
import { type RestoreFunctions, RestoreSteps } from './restore-steps.ts';

export interface RestoreStateMachineProps {
  stateMachineName: string;
  functions: RestoreFunctions;
  /** The restore document (restore-document.ts) and the timeouts of the configuration. */
  host: HostCommands;
}

export class RestoreStateMachine extends Construct {
  readonly stateMachine: StateMachine;

  constructor(scope: Construct, id: string, props: RestoreStateMachineProps) {
    super(scope, id);
    const cleanup = new RestoreCleanupSteps(this, 'Cleanup', {
      functions: props.functions,
      host: props.host,
    });
    const definition = new RestoreSteps(this, 'Restore', {
      functions: props.functions,
      host: props.host,
      cleanup,
    });
    this.stateMachine = pgsnapStateMachine(this, {
      stateMachineName: props.stateMachineName,
      definition,
      comment:
        'pgsnap: restores a backup of one PostgreSQL cluster from its EBS snapshots onto an instance (restore, drill or standby); the restoreId is the execution name, or is derived from it',
      counters: 'the restore and drill counters',
      functions: Object.values(props.functions),
    });
  }
}
