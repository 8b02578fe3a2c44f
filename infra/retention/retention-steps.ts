/**
 * Retention after a completed backup: delete the backups and WAL past the
 * cluster's retention. A retention that fails is kept in the output
 * ($.retentionError) and retried by the retention schedule; either way the
 * workflow goes on to `next`.
 */
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import {
  type IChainable,
  type INextable,
  JsonPath,
  type State,
  StateMachineFragment,
  TaskInput,
} from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { states } from '../backup/state-names.ts';
import { lambda } from '../steps.ts';

export interface RetentionStepsProps {
  applyRetention: IFunction;
  next: IChainable;
}

export class RetentionSteps extends StateMachineFragment {
  readonly startState: State;
  /** None: retention goes on to `next`, whether it succeeded or failed. */
  readonly endStates: INextable[] = [];

  constructor(scope: Construct, id: string, props: RetentionStepsProps) {
    super(scope, id);
    const apply = lambda(
      this,
      states.applyRetention,
      props.applyRetention,
      TaskInput.fromObject({
        cluster: JsonPath.stringAt('$.cluster'),
        repository: JsonPath.stringAt('$.repository'),
      }),
      '$.retention',
    ).addRetry({ errors: ['RepositoryUnreachableError', 'RequestLimitExceeded'], maxAttempts: 3 });
    apply.addCatch(props.next, { resultPath: '$.retentionError' });
    apply.next(props.next);
    this.startState = apply;
  }
}
