/**
 * The DR copy of a completed backup: copy it to DR, wait for the copies with
 * growing pauses, record them. A copy that fails never fails the backup: it
 * takes its own path (record the failure in both manifests, count it for its
 * alarm, announce it), and either way the workflow goes on to `next`.
 */
import { Duration } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import {
  Choice,
  Condition,
  type IChainable,
  type INextable,
  JsonPath,
  Pass,
  Result,
  type State,
  StateMachineFragment,
  TaskInput,
  Wait,
  WaitTime,
} from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { states } from '../backup/state-names.ts';
import { copyEvents, copyMetrics } from '../monitoring/metrics-and-events.ts';
import { announce, countMetric, lambda } from '../steps.ts';

export interface DrCopyStepsProps {
  functions: { copySnapshots: IFunction; checkCopies: IFunction; recordCopies: IFunction };
  /** What follows the copy, whether it succeeded or failed. */
  next: IChainable;
}

export class DrCopySteps extends StateMachineFragment {
  readonly startState: State;
  /** None: every path goes on to `next`. */
  readonly endStates: INextable[] = [];

  constructor(scope: Construct, id: string, props: DrCopyStepsProps) {
    super(scope, id);
    const { functions } = props;
    const ofBackup = {
      cluster: JsonPath.stringAt('$.cluster'),
      backupId: JsonPath.stringAt('$.backupId'),
      repository: JsonPath.stringAt('$.repository'),
    };

    const copy = lambda(
      this,
      states.copy,
      functions.copySnapshots,
      TaskInput.fromObject({ ...ofBackup, snapshotSet: JsonPath.objectAt('$.snapshotSet') }),
      '$.dr',
    ).addRetry({
      errors: ['RepositoryUnreachableError'],
      interval: Duration.seconds(5),
      backoffRate: 2,
      maxAttempts: 3,
    });
    const copyStarted = new Choice(this, states.copyStarted);
    const checkCopies = lambda(
      this,
      states.checkCopies,
      functions.checkCopies,
      undefined, // the whole state: the copies and the last poll
      '$.copyPoll',
    );
    const allCopied = new Choice(this, states.allCopiesCompleted);
    const waitForCopies = new Wait(this, states.waitForCopies, {
      time: WaitTime.secondsPath('$.copyPoll.waitSeconds'),
    });
    const recordCopies = lambda(
      this,
      states.recordCopies,
      functions.recordCopies,
      TaskInput.fromObject({
        ...ofBackup,
        outcome: 'completed',
        snapshotSet: JsonPath.objectAt('$.snapshotSet'),
        dr: JsonPath.objectAt('$.dr'),
      }),
      JsonPath.DISCARD,
    ).addRetry({ errors: ['RepositoryUnreachableError'], interval: Duration.seconds(5), maxAttempts: 3 });

    const noteFailed = new Pass(this, states.noteCopyFailed, {
      result: Result.fromString('failed'),
      resultPath: '$.outcome',
    });
    const recordFailed = lambda(
      this,
      states.recordFailedCopies,
      functions.recordCopies,
      undefined, // the whole state: the copies if they were started, and the error
      '$.copyCleanup',
    ).addRetry({ errors: ['States.ALL'], interval: Duration.seconds(10), backoffRate: 2, maxAttempts: 3 });
    const countFailed = countMetric(this, states.countCopyFailed, copyMetrics.failed).addRetry({
      maxAttempts: 2,
    });
    const announceFailed = announce(this, states.announceCopyFailed, copyEvents.failed, {
      ...ofBackup,
      error: JsonPath.stringAt('$.copyError.Error'),
      cause: JsonPath.stringAt('$.copyError.Cause'),
    }).addRetry({ maxAttempts: 2 });

    for (const step of [copy, checkCopies, recordCopies])
      step.addCatch(noteFailed, { resultPath: '$.copyError' });
    recordFailed.addCatch(countFailed, { resultPath: '$.copyCleanup' });
    countFailed.addCatch(announceFailed, { resultPath: JsonPath.DISCARD });
    announceFailed.addCatch(props.next, { resultPath: JsonPath.DISCARD });
    noteFailed.next(recordFailed).next(countFailed).next(announceFailed).next(props.next);

    copy.next(copyStarted.when(Condition.isPresent('$.dr.copies[0]'), checkCopies).otherwise(props.next));
    checkCopies.next(
      allCopied
        .when(Condition.booleanEquals('$.copyPoll.completed', true), recordCopies)
        .otherwise(waitForCopies.next(checkCopies)),
    );
    recordCopies.next(props.next);
    this.startState = copy;
  }
}
