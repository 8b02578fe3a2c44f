/**
 * The steps after a backup is completed and announced: copy it to DR, wait
 * for the copies with growing pauses, record them; then apply retention. A
 * copy that fails never fails the backup: it takes its own path (record the
 * failure in both manifests, count it for its alarm, announce it) and the
 * workflow goes on to retention. A retention that fails is kept in the
 * output ($.retentionError) and retried by the retention schedule.
 */
import { Duration } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import {
  Choice,
  Condition,
  JsonPath,
  Pass,
  Result,
  type State,
  TaskInput,
  Wait,
  WaitTime,
} from 'aws-cdk-lib/aws-stepfunctions';
import { CallAwsService, EventBridgePutEvents, LambdaInvoke } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';
import { backupEvents, backupMetrics } from './backup-state-machine.ts';

export const copyEvents = { failed: 'pgsnap copy failed' } as const;
export const copyMetrics = { failed: 'CopyFailed' } as const;

export interface AfterBackupFunctions {
  copySnapshots?: IFunction;
  checkCopies?: IFunction;
  recordCopies?: IFunction;
  applyRetention?: IFunction;
}

/** Builds the steps in `scope` (the state machine's construct); returns the first one. */
export function afterBackupSteps(scope: Construct, done: State, functions: AfterBackupFunctions): State {
  const lambda = (name: string, fn: IFunction, payload: TaskInput | undefined, resultPath: string) =>
    new LambdaInvoke(scope, name, {
      lambdaFunction: fn,
      ...(payload ? { payload } : {}),
      payloadResponseOnly: true,
      resultPath,
    });
  const ofBackup = {
    cluster: JsonPath.stringAt('$.cluster'),
    backupId: JsonPath.stringAt('$.backupId'),
    repository: JsonPath.stringAt('$.repository'),
  };

  let retention: State = done;
  if (functions.applyRetention) {
    const apply = lambda(
      'Apply retention',
      functions.applyRetention,
      TaskInput.fromObject({
        cluster: JsonPath.stringAt('$.cluster'),
        repository: JsonPath.stringAt('$.repository'),
      }),
      '$.retention',
    ).addRetry({ errors: ['RepositoryUnreachableError', 'RequestLimitExceeded'], maxAttempts: 3 });
    apply.addCatch(done, { resultPath: '$.retentionError' });
    apply.next(done);
    retention = apply;
  }

  const { copySnapshots, checkCopies, recordCopies } = functions;
  if (!(copySnapshots && checkCopies && recordCopies)) return retention;

  const copy = lambda(
    'Copy the backup to DR',
    copySnapshots,
    TaskInput.fromObject({ ...ofBackup, snapshotSet: JsonPath.objectAt('$.snapshotSet') }),
    '$.dr',
  ).addRetry({
    errors: ['RequestLimitExceeded', 'InternalError', 'RepositoryUnreachableError'],
    interval: Duration.seconds(5),
    backoffRate: 2,
    maxAttempts: 3,
  });
  const copied = new Choice(scope, 'Is the backup copied to DR?');
  const check = lambda(
    'Check whether the DR copies are completed',
    checkCopies,
    undefined, // the whole state: the copies and the last poll
    '$.copyPoll',
  ).addRetry({
    errors: ['RequestLimitExceeded', 'InternalError'],
    interval: Duration.seconds(5),
    maxAttempts: 3,
  });
  const allCopied = new Choice(scope, 'Are all DR copies completed?');
  const wait = new Wait(scope, 'Wait before checking the DR copies again', {
    time: WaitTime.secondsPath('$.copyPoll.waitSeconds'),
  });
  const recordCompleted = lambda(
    'Record the completed DR copies',
    recordCopies,
    TaskInput.fromObject({
      ...ofBackup,
      outcome: 'completed',
      snapshotSet: JsonPath.objectAt('$.snapshotSet'),
      dr: JsonPath.objectAt('$.dr'),
    }),
    JsonPath.DISCARD,
  ).addRetry({ errors: ['RepositoryUnreachableError'], interval: Duration.seconds(5), maxAttempts: 3 });

  const noteFailure = new Pass(scope, 'Note the failed DR copy', {
    result: Result.fromString('failed'),
    resultPath: '$.outcome',
  });
  const recordFailed = lambda(
    'Record the failed DR copies',
    recordCopies,
    undefined, // the whole state: the copies if they were started, and the error
    '$.copyCleanup',
  ).addRetry({ errors: ['States.ALL'], interval: Duration.seconds(10), backoffRate: 2, maxAttempts: 3 });
  const countFailed = new CallAwsService(scope, 'Count the failed DR copy', {
    service: 'cloudwatch',
    action: 'putMetricData',
    iamResources: ['*'],
    parameters: {
      Namespace: backupMetrics.namespace,
      MetricData: [
        {
          MetricName: copyMetrics.failed,
          Dimensions: [{ Name: backupMetrics.dimension, Value: JsonPath.stringAt('$.cluster') }],
          Value: 1,
          Unit: 'Count',
        },
      ],
    },
    resultPath: JsonPath.DISCARD,
  }).addRetry({ maxAttempts: 2 });
  const announceFailed = new EventBridgePutEvents(scope, 'Announce the failed DR copy', {
    entries: [
      {
        source: backupEvents.source,
        detailType: copyEvents.failed,
        detail: TaskInput.fromObject({
          ...ofBackup,
          error: JsonPath.stringAt('$.copyError.Error'),
          cause: JsonPath.stringAt('$.copyError.Cause'),
        }),
      },
    ],
    resultPath: JsonPath.DISCARD,
  }).addRetry({ maxAttempts: 2 });

  for (const step of [copy, check, recordCompleted])
    step.addCatch(noteFailure, { resultPath: '$.copyError' });
  recordFailed.addCatch(countFailed, { resultPath: '$.copyCleanup' });
  countFailed.addCatch(announceFailed, { resultPath: JsonPath.DISCARD });
  announceFailed.addCatch(retention, { resultPath: JsonPath.DISCARD });
  noteFailure.next(recordFailed).next(countFailed).next(announceFailed).next(retention);

  copy.next(copied.when(Condition.isPresent('$.dr.copies[0]'), check).otherwise(retention));
  check.next(
    allCopied
      .when(Condition.booleanEquals('$.copyPoll.completed', true), recordCompleted)
      .otherwise(wait.next(check)),
  );
  recordCompleted.next(retention);
  return copy;
}
