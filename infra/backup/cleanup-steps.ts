/**
 * The one cleanup path every failure after begin takes (DESIGN.md "A backup,
 * step by step"): abort on the host if it may still be in backup mode, delete
 * the snapshots, return the backup's share of the pending-snapshot budget, mark the manifest failed with the reason, count and announce
 * the failure, fail. It is entered with the caught error in `$.error`.
 */
import { Duration } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import {
  Choice,
  Condition,
  Fail,
  type INextable,
  JitterType,
  JsonPath,
  type State,
  StateMachineFragment,
  TaskInput,
} from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { backupEvents, backupMetrics } from '../monitoring/metrics-and-events.ts';
import { announce, countMetric, type HostCommands, lambda, onHost, recordInManifest } from '../steps.ts';
import { states } from './state-names.ts';

export interface CleanupStepsProps {
  functions: { deleteSnapshots: IFunction; recordBackup: IFunction; releaseSnapshotBudget: IFunction };
  host: HostCommands;
}

export class CleanupSteps extends StateMachineFragment {
  readonly startState: State;
  /** None: the path ends in the failed execution. */
  readonly endStates: INextable[] = [];

  constructor(scope: Construct, id: string, props: CleanupStepsProps) {
    super(scope, id);
    const stillInBackup = new Choice(this, states.stillInBackup);
    const abort = onHost(
      this,
      states.abort,
      props.host,
      {
        command: 'abort',
        reason: JsonPath.format('the state machine caught {}', JsonPath.stringAt('$.error.Error')),
      },
      '$.abort',
      // Aborting takes seconds; with the default heartbeat (300 s) the timeout alone bounds the wait.
      Math.min(props.host.timeouts.hostCommandSeconds, 300),
    );
    const deleteSnapshots = lambda(
      this,
      states.deleteSnapshots,
      props.functions.deleteSnapshots,
      TaskInput.fromObject({ backupId: JsonPath.stringAt('$.backupId') }),
      '$.cleanup',
    ).addRetry({ errors: ['States.ALL'], interval: Duration.seconds(10), backoffRate: 2, maxAttempts: 4 });
    const releaseBudget = lambda(
      this,
      states.releaseBudgetOnFailure,
      props.functions.releaseSnapshotBudget,
      TaskInput.fromObject({
        backupId: JsonPath.stringAt('$.backupId'),
        cluster: JsonPath.stringAt('$.cluster'),
      }),
      JsonPath.DISCARD,
    ).addRetry({
      errors: ['States.ALL'],
      interval: Duration.seconds(2),
      backoffRate: 2,
      maxAttempts: 3,
      jitterStrategy: JitterType.FULL,
    });
    const markFailed = recordInManifest(this, states.markFailed, props.functions.recordBackup, 'failed', {
      error: JsonPath.objectAt('$.error'),
    });
    const countFailed = countMetric(this, states.countFailed, backupMetrics.failed, { fleet: true }).addRetry(
      {
        maxAttempts: 2,
      },
    );
    const announceFailed = announce(this, states.announceFailed, backupEvents.failed, {
      cluster: JsonPath.stringAt('$.cluster'),
      backupId: JsonPath.stringAt('$.backupId'),
      label: JsonPath.stringAt('$.label'),
      trigger: JsonPath.stringAt('$.trigger'),
      error: JsonPath.stringAt('$.error.Error'),
      cause: JsonPath.stringAt('$.error.Cause'),
      cleanup: JsonPath.objectAt('$.cleanup'),
    }).addRetry({ maxAttempts: 2 });
    const failed = new Fail(this, states.failed, {
      errorPath: '$.error.Error',
      causePath: '$.error.Cause',
    });

    // A cleanup step that fails is recorded and the path goes on: the failure is announced whatever happens.
    abort.addCatch(deleteSnapshots, { resultPath: '$.abort' });
    deleteSnapshots.addCatch(releaseBudget, { resultPath: '$.cleanup' });
    // A share not returned lapses with its lease.
    releaseBudget.addCatch(markFailed, { resultPath: '$.budgetError' });
    markFailed.addCatch(countFailed, { resultPath: '$.manifestError' });
    countFailed.addCatch(announceFailed, { resultPath: JsonPath.DISCARD });
    announceFailed.addCatch(failed, { resultPath: JsonPath.DISCARD });
    stillInBackup.when(Condition.isPresent('$.end'), deleteSnapshots).otherwise(abort);
    abort.next(deleteSnapshots);
    deleteSnapshots.next(releaseBudget);
    releaseBudget.next(markFailed);
    markFailed.next(countFailed);
    countFailed.next(announceFailed);
    announceFailed.next(failed);
    this.startState = stillInBackup;
  }
}
