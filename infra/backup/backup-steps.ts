/**
 * The backup itself (DESIGN.md "A backup, step by step"): check the request,
 * begin on the host, snapshot exactly the cluster's volumes, end on the host
 * as soon as every snapshot is pending, wait until every snapshot is
 * completed (each pause what EBS's Progress predicts is left:
 * domain/ebs/poll-wait.ts), then mark the manifest completed, count and announce
 * the backup. Before begin it takes a share of the account's pending-snapshot
 * budget (snapshot-budget.ts), waiting there to be woken, not in backup mode; the share is returned once the snapshots are completed, or on
 * the cleanup path. The manifest gets the snapshot ids before end runs, and is
 * marked completed only when every snapshot is. Every failure after begin
 * goes to `cleanup` with the error in `$.error`.
 *
 * The first step works out the backupId from the execution (its name when that
 * is one, otherwise derived from its name and start time: backupIdOfExecution
 * in domain/backup/execution.ts); the state after it is the BackupPlan
 * (domain/backup/plan.ts), to which each step adds its result.
 */
import { Duration } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import {
  Choice,
  Condition,
  Fail,
  type IChainable,
  type INextable,
  JitterType,
  JsonPath,
  type State,
  StateMachineFragment,
  Succeed,
  TaskInput,
  type TaskStateBase,
  Wait,
  WaitTime,
} from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { stateRetries } from '#domain/aws-retry';
import { backupEvents, backupMetrics } from '../monitoring/metrics-and-events.ts';
import { announce, countMetric, type HostCommands, lambda, onHost, recordInManifest } from '../steps.ts';
import { snapshotShareTimeoutSeconds, waitForShare } from './snapshot-budget.ts';
import { states } from './state-names.ts';

export interface BackupStepsProps {
  functions: {
    prepareBackup: IFunction;
    createSnapshots: IFunction;
    checkSnapshots: IFunction;
    recordBackup: IFunction;
    acquireSnapshotBudget: IFunction;
    releaseSnapshotBudget: IFunction;
  };
  host: HostCommands;
  /** Where every failure after begin goes (the cleanup path). */
  cleanup: IChainable;
  /** What follows once the backup is completed and announced. */
  next: IChainable;
}

export class BackupSteps extends StateMachineFragment {
  readonly startState: State;
  /** None: a completed backup goes on to `next`, a failed one to `cleanup`. */
  readonly endStates: INextable[] = [];

  constructor(scope: Construct, id: string, props: BackupStepsProps) {
    super(scope, id);
    const { functions, host } = props;
    const caught = (error: string) => ({ errors: [error], resultPath: '$.error' });

    const prepare = lambda(
      this,
      states.prepare,
      functions.prepareBackup,
      TaskInput.fromObject({
        input: JsonPath.entirePayload,
        executionName: JsonPath.executionName,
        executionArn: JsonPath.executionId,
        executionStartTime: JsonPath.executionStartTime,
        stateMachineArn: JsonPath.stateMachineId,
      }),
    );
    const refused = new Fail(this, states.refused, {
      errorPath: '$.error.Error',
      causePath: '$.error.Cause',
    });
    const leaveToRunning = new Succeed(this, states.leaveToRunning, {
      comment:
        'The host runs another backup of this cluster (BackupInProgressError); one backup of a cluster at a time.',
    });

    // Waits up to six hours for a share, woken by a return (snapshot-budget.ts), asking again every five minutes.
    const acquireBudget = waitForShare(
      this,
      states.acquireBudget,
      functions.acquireSnapshotBudget,
      {
        backupId: JsonPath.stringAt('$.backupId'),
        cluster: JsonPath.stringAt('$.cluster'),
        volumeIds: JsonPath.listAt('$.volumeIds'),
      },
      '$.budget',
      { timeoutSeconds: snapshotShareTimeoutSeconds, attempts: (6 * 3_600) / snapshotShareTimeoutSeconds },
    );
    const releaseBudget = lambda(
      this,
      states.releaseBudget,
      functions.releaseSnapshotBudget,
      TaskInput.fromObject({
        backupId: JsonPath.stringAt('$.backupId'),
        cluster: JsonPath.stringAt('$.cluster'),
      }),
      JsonPath.DISCARD,
    ).addRetry({
      interval: Duration.seconds(2),
      backoffRate: 2,
      maxAttempts: 3,
      jitterStrategy: JitterType.FULL,
    });

    const begin = onHost(
      this,
      states.begin,
      host,
      {
        command: 'begin',
        label: JsonPath.stringAt('$.label'),
        fast: JsonPath.format('{}', JsonPath.stringAt('$.fast')),
        maxDuration: JsonPath.format('{}m', JsonPath.stringAt('$.maxBackupMinutes')),
      },
      '$.begin',
      host.timeouts.hostCommandSeconds,
    );
    const snapshot = lambda(
      this,
      states.snapshot,
      functions.createSnapshots,
      TaskInput.fromObject({
        cluster: JsonPath.stringAt('$.cluster'),
        backupId: JsonPath.stringAt('$.backupId'),
        instanceId: JsonPath.stringAt('$.instanceId'),
        // The call and its snapshot ids are recorded in the manifest: a retry takes no second set.
        repository: JsonPath.stringAt('$.repository'),
        volumeIds: JsonPath.listAt('$.volumeIds'),
        begin: JsonPath.objectAt('$.begin'),
      }),
      '$.snapshotSet',
      stateRetries.snapshotCapacity,
    );
    const recordSnapshots = recordInManifest(
      this,
      states.recordSnapshots,
      functions.recordBackup,
      'snapshotting',
      { snapshots: JsonPath.objectAt('$.snapshotSet.snapshots') },
    );
    const end = onHost(this, states.end, host, { command: 'end' }, '$.end', host.timeouts.hostCommandSeconds);
    const checkSnapshots = lambda(
      this,
      states.checkSnapshots,
      functions.checkSnapshots,
      undefined, // the whole state: the snapshot set and the last poll
      '$.poll',
    );
    const allCompleted = new Choice(this, states.allSnapshotsCompleted);
    const waitForSnapshots = new Wait(this, states.waitForSnapshots, {
      time: WaitTime.secondsPath('$.poll.waitSeconds'),
    });
    // The host proposed its stop in end's answer: recorded here, checked, with the snapshots EC2 saw complete.
    const markCompleted = recordInManifest(this, states.markCompleted, functions.recordBackup, 'completed', {
      snapshots: JsonPath.objectAt('$.snapshotSet.snapshots'),
      snapshotsCreatedAt: JsonPath.stringAt('$.snapshotSet.createdAt'),
      end: JsonPath.objectAt('$.end'),
    });
    const countCompleted = countMetric(this, states.countCompleted, backupMetrics.completed, {
      fleet: true,
    }).addRetry({
      maxAttempts: 2,
    });
    const announceCompleted = announce(this, states.announceCompleted, backupEvents.completed, {
      cluster: JsonPath.stringAt('$.cluster'),
      backupId: JsonPath.stringAt('$.backupId'),
      label: JsonPath.stringAt('$.label'),
      trigger: JsonPath.stringAt('$.trigger'),
      startLsn: JsonPath.stringAt('$.begin.startLsn'),
      stopLsn: JsonPath.stringAt('$.end.stopLsn'),
      snapshots: JsonPath.objectAt('$.snapshotSet.snapshots'),
    }).addRetry({ maxAttempts: 2 });

    const afterBegin: TaskStateBase[] = [
      begin,
      snapshot,
      recordSnapshots,
      end,
      checkSnapshots,
      markCompleted,
    ];
    // Nothing was begun on the host: the running backup covers this one, and there is nothing to clean up.
    begin.addCatch(leaveToRunning, { errors: ['BackupInProgressError'], resultPath: '$.running' });
    for (const step of afterBegin) step.addCatch(props.cleanup, caught('States.ALL'));
    // Once the manifest says completed, the backup is good: failing to count or announce it must not undo it.
    countCompleted.addCatch(announceCompleted, { resultPath: '$.countError' });
    announceCompleted.addCatch(props.next, { resultPath: '$.announceError' });
    prepare.addCatch(refused, caught('States.ALL'));
    // No share after the last retry: nothing was begun, nothing to clean up (a lease taken lapses by itself).
    acquireBudget.addCatch(refused, caught('States.ALL'));
    // The snapshots are completed: a share not returned lapses with its lease, and must not fail the backup.
    releaseBudget.addCatch(markCompleted, { resultPath: '$.budgetError' });

    prepare.next(acquireBudget.next(begin));
    begin
      .next(snapshot)
      .next(recordSnapshots)
      .next(end)
      .next(checkSnapshots)
      .next(
        allCompleted
          .when(
            Condition.booleanEquals('$.poll.completed', true),
            releaseBudget.next(markCompleted).next(countCompleted).next(announceCompleted).next(props.next),
          )
          .otherwise(waitForSnapshots.next(checkSnapshots)),
      );
    this.startState = prepare;
  }
}
