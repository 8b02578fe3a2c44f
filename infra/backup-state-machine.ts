/**
 * The backup workflow, step by step (DESIGN.md "A backup, step by step"):
 * begin on the host, snapshot exactly the cluster's volumes, end on the host as
 * soon as every snapshot is pending, wait with growing pauses until every
 * snapshot is completed, then announce the backup. Every failure after begin
 * takes the one cleanup path: abort on the host (if it may still be in backup
 * mode), delete the snapshots, mark the manifest failed with the reason, count
 * and announce the failure, fail. The manifest gets the snapshot ids before
 * end runs, and is marked completed only when every snapshot is.
 *
 * The first step works out the backupId from the execution (its name when that
 * is one, otherwise derived from its name and start time: backupIdOfExecution
 * in domain/backup/execution.ts); the state after it is the BackupPlan
 * (domain/backup/plan.ts), to which each step adds its result.
 */
import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import {
  Choice,
  Condition,
  DefinitionBody,
  Fail,
  IntegrationPattern,
  JsonPath,
  LogLevel,
  type State,
  StateMachine,
  StateMachineType,
  Succeed,
  TaskInput,
  type TaskStateBase,
  Timeout,
  Wait,
  WaitTime,
} from 'aws-cdk-lib/aws-stepfunctions';
import { CallAwsService, EventBridgePutEvents, LambdaInvoke } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { acknowledge, arnReference, nagArn, wildcardReasons } from './acknowledge.ts';
import type { AgentDocumentParameter } from './agent-document.ts';

/** Namespace and names of the metrics the alarms watch. */
export const backupMetrics = {
  namespace: 'pgsnap',
  completed: 'BackupCompleted',
  failed: 'BackupFailed',
  dimension: 'Cluster',
} as const;

/** EventBridge source and detail types of the announcements. */
export const backupEvents = {
  source: 'pgsnap',
  completed: 'pgsnap backup completed',
  failed: 'pgsnap backup failed',
} as const;

export interface BackupStateMachineProps {
  stateMachineName: string;
  functions: {
    prepareBackup: IFunction;
    createSnapshots: IFunction;
    checkSnapshots: IFunction;
    deleteSnapshots: IFunction;
    recordBackup: IFunction;
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
    const stack = Stack.of(this);
    const documentArn = stack.formatArn({
      service: 'ssm',
      resource: 'document',
      resourceName: props.documentName,
    });
    const fail = (error: string) => ({ errors: [error], resultPath: '$.error' });

    /** A step run by the agent on the host; the agent answers with SendTaskSuccess/Failure and heartbeats. */
    const onHost = (
      name: string,
      parameters: Partial<Record<AgentDocumentParameter, string>>,
      resultPath: string,
      timeoutSeconds: number,
    ) => {
      // A heartbeat no shorter than the timeout adds nothing, and AWS requires it to be shorter (Task state).
      const heartbeatSeconds =
        props.timeouts.heartbeatSeconds < timeoutSeconds ? props.timeouts.heartbeatSeconds : undefined;
      return new CallAwsService(this, name, {
        service: 'ssm',
        action: 'sendCommand',
        integrationPattern: IntegrationPattern.WAIT_FOR_TASK_TOKEN,
        // SendCommand on the hosts is granted by the caller, scoped by instance id or tags.
        iamResources: [documentArn],
        parameters: {
          DocumentName: props.documentName,
          InstanceIds: JsonPath.array(JsonPath.stringAt('$.instanceId')),
          Comment: JsonPath.format(
            'pgsnap {} of {}',
            JsonPath.stringAt('$.backupId'),
            JsonPath.stringAt('$.cluster'),
          ),
          Parameters: {
            ...Object.fromEntries(
              Object.entries(parameters).map(([key, value]) => [
                key,
                JsonPath.isEncodedJsonPath(value) ? JsonPath.array(value) : [value],
              ]),
            ),
            cluster: JsonPath.array(JsonPath.stringAt('$.cluster')),
            repository: JsonPath.array(JsonPath.stringAt('$.repository')),
            backupId: JsonPath.array(JsonPath.stringAt('$.backupId')),
            taskToken: JsonPath.array(JsonPath.taskToken),
            // The agent heartbeats by the configured setting even where the state has no heartbeat (abort).
            heartbeatSeconds: [String(props.timeouts.heartbeatSeconds)],
          },
        },
        ...(heartbeatSeconds
          ? { heartbeatTimeout: Timeout.duration(Duration.seconds(heartbeatSeconds)) }
          : {}),
        taskTimeout: Timeout.duration(Duration.seconds(timeoutSeconds)),
        resultPath,
      });
    };

    /**
     * A Lambda step given `payload` (the whole state when undefined), whose
     * result goes to `resultPath`, or replaces the state when
     * none is given. ("$" would mean the same, but aws-local-stepfunctions 3.0.0
     * stores the result under a key named "$", so it is left out.)
     */
    const lambda = (name: string, fn: IFunction, payload: TaskInput | undefined, resultPath?: string) =>
      new LambdaInvoke(this, name, {
        lambdaFunction: fn,
        ...(payload ? { payload } : {}),
        payloadResponseOnly: true,
        ...(resultPath ? { resultPath } : {}),
      });

    const record = (
      name: string,
      state: 'snapshotting' | 'completed' | 'failed',
      extra: Record<string, unknown>,
    ) =>
      lambda(
        name,
        props.functions.recordBackup,
        TaskInput.fromObject({
          state,
          cluster: JsonPath.stringAt('$.cluster'),
          backupId: JsonPath.stringAt('$.backupId'),
          repository: JsonPath.stringAt('$.repository'),
          ...extra,
        }),
        JsonPath.DISCARD,
      ).addRetry({
        errors: ['RepositoryUnreachableError', 'Lambda.TooManyRequestsException'],
        interval: Duration.seconds(5),
        backoffRate: 2,
        maxAttempts: 4,
      });

    const countMetric = (name: string, metricName: string) =>
      new CallAwsService(this, name, {
        service: 'cloudwatch',
        action: 'putMetricData',
        // PutMetricData has no resource-level permissions (acknowledged in the stack).
        iamResources: ['*'],
        parameters: {
          Namespace: backupMetrics.namespace,
          MetricData: [
            {
              MetricName: metricName,
              Dimensions: [{ Name: backupMetrics.dimension, Value: JsonPath.stringAt('$.cluster') }],
              Value: 1,
              Unit: 'Count',
            },
          ],
        },
        resultPath: JsonPath.DISCARD,
      });

    const announce = (name: string, detailType: string, detail: Record<string, unknown>) =>
      new EventBridgePutEvents(this, name, {
        entries: [{ source: backupEvents.source, detailType, detail: TaskInput.fromObject(detail) }],
        resultPath: JsonPath.DISCARD,
      });

    // ---- the steps, in the order a backup takes them ----

    const prepare = lambda(
      'Check the request and find the cluster',
      props.functions.prepareBackup,
      TaskInput.fromObject({
        input: JsonPath.entirePayload,
        executionName: JsonPath.executionName,
        executionArn: JsonPath.executionId,
        executionStartTime: JsonPath.executionStartTime,
        stateMachineArn: JsonPath.stateMachineId,
      }),
    );
    const refuse = new Fail(this, 'The backup request is refused', {
      errorPath: '$.error.Error',
      causePath: '$.error.Cause',
    });
    const anotherRunning = new Choice(this, 'Is another backup of this cluster running?');
    const skip = new Succeed(this, 'Leave it to the backup already running', {
      comment: 'Another execution backs up this cluster; two backups of one cluster never run at once.',
    });

    const begin = onHost(
      'Begin the backup on the host',
      {
        command: 'begin',
        label: JsonPath.stringAt('$.label'),
        fast: JsonPath.format('{}', JsonPath.stringAt('$.fast')),
        maxDuration: JsonPath.format('{}m', JsonPath.stringAt('$.maxBackupMinutes')),
      },
      '$.begin',
      props.timeouts.hostCommandSeconds,
    );
    const snapshot = lambda(
      "Snapshot the cluster's volumes",
      props.functions.createSnapshots,
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
    ).addRetry({
      errors: ['RequestLimitExceeded', 'InternalError', 'SnapshotCreationPerVolumeRateExceeded'],
      interval: Duration.seconds(2),
      backoffRate: 2,
      maxAttempts: 3,
    });
    const recordSnapshots = record('Record the snapshots in the manifest', 'snapshotting', {
      snapshots: JsonPath.objectAt('$.snapshotSet.snapshots'),
    });
    const end = onHost(
      'End the backup on the host',
      { command: 'end' },
      '$.end',
      props.timeouts.hostCommandSeconds,
    );
    const check = lambda(
      'Check whether the snapshots are completed',
      props.functions.checkSnapshots,
      undefined, // the whole state: the snapshot set and the last poll
      '$.poll',
    ).addRetry({
      errors: ['RequestLimitExceeded', 'InternalError'],
      interval: Duration.seconds(5),
      backoffRate: 2,
      maxAttempts: 3,
    });
    const allCompleted = new Choice(this, 'Are all snapshots completed?');
    const waitForSnapshots = new Wait(this, 'Wait before checking the snapshots again', {
      time: WaitTime.secondsPath('$.poll.waitSeconds'),
    });
    const markCompleted = record('Mark the backup completed in the manifest', 'completed', {
      snapshots: JsonPath.objectAt('$.snapshotSet.snapshots'),
    });
    const countCompleted = countMetric('Count the completed backup', backupMetrics.completed).addRetry({
      maxAttempts: 2,
    });
    const announceCompleted = announce('Announce the completed backup', backupEvents.completed, {
      cluster: JsonPath.stringAt('$.cluster'),
      backupId: JsonPath.stringAt('$.backupId'),
      label: JsonPath.stringAt('$.label'),
      trigger: JsonPath.stringAt('$.trigger'),
      startLsn: JsonPath.stringAt('$.begin.startLsn'),
      stopLsn: JsonPath.stringAt('$.end.stopLsn'),
      snapshots: JsonPath.objectAt('$.snapshotSet.snapshots'),
    }).addRetry({ maxAttempts: 2 });
    const done = new Succeed(this, 'The backup is completed');
    const finish = props.afterCompleted ? props.afterCompleted(this, done) : done;

    // ---- the one cleanup path ----

    const stillInBackup = new Choice(this, 'Can the host still be in backup mode?');
    const abort = onHost(
      'Abort the backup on the host',
      {
        command: 'abort',
        reason: JsonPath.format('the state machine caught {}', JsonPath.stringAt('$.error.Error')),
      },
      '$.abort',
      // Aborting takes seconds; with the default heartbeat (300 s) the timeout alone bounds the wait.
      Math.min(props.timeouts.hostCommandSeconds, 300),
    );
    const deleteSnapshots = lambda(
      "Delete the backup's snapshots",
      props.functions.deleteSnapshots,
      TaskInput.fromObject({ backupId: JsonPath.stringAt('$.backupId') }),
      '$.cleanup',
    ).addRetry({ errors: ['States.ALL'], interval: Duration.seconds(10), backoffRate: 2, maxAttempts: 4 });
    const markFailed = record('Mark the backup failed in the manifest', 'failed', {
      error: JsonPath.objectAt('$.error'),
    });
    const countFailed = countMetric('Count the failed backup', backupMetrics.failed).addRetry({
      maxAttempts: 2,
    });
    const announceFailed = announce('Announce the failed backup', backupEvents.failed, {
      cluster: JsonPath.stringAt('$.cluster'),
      backupId: JsonPath.stringAt('$.backupId'),
      label: JsonPath.stringAt('$.label'),
      trigger: JsonPath.stringAt('$.trigger'),
      error: JsonPath.stringAt('$.error.Error'),
      cause: JsonPath.stringAt('$.error.Cause'),
      cleanup: JsonPath.objectAt('$.cleanup'),
    }).addRetry({ maxAttempts: 2 });
    const failed = new Fail(this, 'The backup failed', {
      errorPath: '$.error.Error',
      causePath: '$.error.Cause',
    });

    // A cleanup step that fails is recorded and the path goes on: the failure is announced whatever happens.
    abort.addCatch(deleteSnapshots, { resultPath: '$.abort' });
    deleteSnapshots.addCatch(markFailed, { resultPath: '$.cleanup' });
    markFailed.addCatch(countFailed, { resultPath: '$.manifestError' });
    countFailed.addCatch(announceFailed, { resultPath: JsonPath.DISCARD });
    announceFailed.addCatch(failed, { resultPath: JsonPath.DISCARD });
    stillInBackup.when(Condition.isPresent('$.end'), deleteSnapshots).otherwise(abort);
    abort.next(deleteSnapshots);
    deleteSnapshots.next(markFailed);
    markFailed.next(countFailed);
    countFailed.next(announceFailed);
    announceFailed.next(failed);

    const afterBegin: TaskStateBase[] = [begin, snapshot, recordSnapshots, end, check, markCompleted];
    for (const step of afterBegin) step.addCatch(stillInBackup, fail('States.ALL'));
    // Once the manifest says completed, the backup is good: failing to count or announce it must not undo it.
    countCompleted.addCatch(announceCompleted, { resultPath: '$.countError' });
    announceCompleted.addCatch(finish, { resultPath: '$.announceError' });
    prepare.addCatch(refuse, fail('States.ALL'));

    const definition = prepare.next(
      anotherRunning.when(Condition.isPresent('$.runningBackupId'), skip).otherwise(begin),
    );
    begin
      .next(snapshot)
      .next(recordSnapshots)
      .next(end)
      .next(check)
      .next(
        allCompleted
          .when(
            Condition.booleanEquals('$.poll.completed', true),
            markCompleted.next(countCompleted).next(announceCompleted).next(finish),
          )
          .otherwise(waitForSnapshots.next(check)),
      );

    const logs = new LogGroup(this, 'Logs', {
      retention: RetentionDays.ONE_YEAR,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.stateMachine = new StateMachine(this, 'StateMachine', {
      stateMachineName: props.stateMachineName,
      stateMachineType: StateMachineType.STANDARD,
      definitionBody: DefinitionBody.fromChainable(definition),
      comment:
        'pgsnap: a consistent snapshot backup of one PostgreSQL cluster; the backupId is the execution name, or is derived from the name and start time',
      tracingEnabled: true,
      // Every state, but not its data: the SSM step's parameters carry the task token (anyone who reads the
      // logs could answer for the host), and inputs and outputs carry hosts' answers.
      logs: { destination: logs, level: LogLevel.ALL, includeExecutionData: false },
    });
    acknowledge(this, {
      'AwsSolutions-IAM5[Resource::*]': `${wildcardReasons.xray}; nor do cloudwatch:PutMetricData (the backup counters) and the log delivery actions`,
      ...Object.fromEntries(
        Object.values(props.functions).map((fn) => [
          `AwsSolutions-IAM5[Resource::${arnReference(fn)}:*]`,
          wildcardReasons.lambdaVersions,
        ]),
      ),
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
