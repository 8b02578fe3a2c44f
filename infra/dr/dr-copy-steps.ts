/**
 * The DR copy of a completed backup: take a share of the DR copy budget (one
 * unit per snapshot, in the destination Region's queue, oldest backup first:
 * copy-budget.ts), copy it to DR, wait for the copies (each pause what
 * EBS's Progress predicts is left: domain/ebs/poll-wait.ts), return the
 * share, record them. A copy that fails never fails the backup: it
 * takes its own path (return the share, record the failure in both manifests,
 * count it for its alarm, announce it), and either way the workflow goes on
 * to `next`.
 */
import { Duration } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import {
  Choice,
  Condition,
  type IChainable,
  type INextable,
  JitterType,
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
import { waitForShare } from '../backup/snapshot-budget.ts';
import { states } from '../backup/state-names.ts';
import { copyEvents, copyMetrics } from '../monitoring/metrics-and-events.ts';
import { announce, countMetric, lambda } from '../steps.ts';
import { copyShareTimeoutSeconds } from './copy-budget.ts';

/** Asks of a backup waiting in the DR copy queue before its copy is given up (one per step timeout). */
export const copyQueueAttempts = 84;

export interface DrCopyStepsProps {
  functions: {
    copySnapshots: IFunction;
    checkCopies: IFunction;
    recordCopies: IFunction;
    acquireCopyBudget: IFunction;
    releaseCopyBudget: IFunction;
  };
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

    // The queue: a waiter is woken by a return that hands it its units (copy-budget.ts), and asks again
    // when its step times out (a lost wake-up), for about fourteen hours.
    const acquireCopies = waitForShare(
      this,
      states.acquireCopies,
      functions.acquireCopyBudget,
      { ...ofBackup, snapshotSet: JsonPath.objectAt('$.snapshotSet') },
      '$.copyBudget',
      { timeoutSeconds: copyShareTimeoutSeconds, attempts: copyQueueAttempts },
    );
    const returnShare = (name: typeof states.releaseCopies | typeof states.releaseCopiesOnFailure) =>
      lambda(
        this,
        name,
        functions.releaseCopyBudget,
        TaskInput.fromObject({ backupId: JsonPath.stringAt('$.backupId') }),
        JsonPath.DISCARD,
      ).addRetry({
        interval: Duration.seconds(2),
        backoffRate: 2,
        maxAttempts: 3,
        jitterStrategy: JitterType.FULL,
      });
    const releaseCopies = returnShare(states.releaseCopies);
    const releaseOnFailure = returnShare(states.releaseCopiesOnFailure);

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
    const countFailed = countMetric(this, states.countCopyFailed, copyMetrics.failed, {
      fleet: true,
    }).addRetry({
      maxAttempts: 2,
    });
    const announceFailed = announce(this, states.announceCopyFailed, copyEvents.failed, {
      ...ofBackup,
      error: JsonPath.stringAt('$.copyError.Error'),
      cause: JsonPath.stringAt('$.copyError.Cause'),
    }).addRetry({ maxAttempts: 2 });

    for (const step of [acquireCopies, copy, checkCopies, recordCopies])
      step.addCatch(noteFailed, { resultPath: '$.copyError' });
    // A share not returned lapses with its lease: failing to return it must not fail the copy or its record.
    releaseCopies.addCatch(recordCopies, { resultPath: '$.copyBudgetError' });
    releaseOnFailure.addCatch(recordFailed, { resultPath: '$.copyBudgetError' });
    recordFailed.addCatch(countFailed, { resultPath: '$.copyCleanup' });
    countFailed.addCatch(announceFailed, { resultPath: JsonPath.DISCARD });
    announceFailed.addCatch(props.next, { resultPath: JsonPath.DISCARD });
    noteFailed
      .next(releaseOnFailure)
      .next(recordFailed)
      .next(countFailed)
      .next(announceFailed)
      .next(props.next);

    acquireCopies.next(copy);
    copy.next(copyStarted.when(Condition.isPresent('$.dr.copies[0]'), checkCopies).otherwise(props.next));
    checkCopies.next(
      allCopied
        .when(Condition.booleanEquals('$.copyPoll.completed', true), releaseCopies)
        .otherwise(waitForCopies.next(checkCopies)),
    );
    releaseCopies.next(recordCopies).next(props.next);
    this.startState = acquireCopies;
  }
}
