/**
 * The kinds of step the backup state machine is built from, each made in the
 * scope of the fragment that uses it and named by a sentence of state-names.ts:
 * a Lambda, a write to the backup's manifest, a metric, an announcement, and a
 * command the agent runs on the host.
 */
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import {
  DefinitionBody,
  type IChainable,
  IntegrationPattern,
  JitterType,
  JsonPath,
  LogLevel,
  type RetryProps,
  StateMachine,
  StateMachineType,
  TaskInput,
  type TaskStateBase,
  Timeout,
} from 'aws-cdk-lib/aws-stepfunctions';
import { CallAwsService, EventBridgePutEvents, LambdaInvoke } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';
import { type StateRetryPolicy, stateRetries } from '#domain/aws-retry';
import type { AgentDocumentParameter } from './backup/agent-document.ts';
import type { StateName } from './backup/state-names.ts';
import { acknowledge, arnReference, wildcardReasons } from './guards/acknowledge.ts';
import { backupEvents, backupMetrics } from './monitoring/metrics-and-events.ts';
import type { RestoreStateName } from './restore/state-names.ts';

/** A state of either state machine. */
type AnyStateName = StateName | RestoreStateName;

/** CDK's Retry for one of the policies of domain/aws-retry.ts. */
export function retryOf(policy: StateRetryPolicy): RetryProps {
  return {
    errors: [...policy.errors],
    interval: Duration.seconds(policy.intervalSeconds),
    backoffRate: policy.backoffRate,
    maxAttempts: policy.maxAttempts,
    maxDelay: Duration.seconds(policy.maxDelaySeconds),
    jitterStrategy: JitterType.FULL,
  };
}

/**
 * A Lambda step given `payload` (the whole state when undefined), whose
 * result goes to `resultPath`, or replaces the state when none is given. ("$"
 * would mean the same, but aws-local-stepfunctions 3.0.0 stores the result
 * under a key named "$", so it is left out.) Its first Retry is `retry`:
 * throttling and AWS's faults unless a step needs another policy.
 */
export function lambda(
  scope: Construct,
  name: AnyStateName,
  fn: IFunction,
  payload: TaskInput | undefined,
  resultPath?: string,
  retry: StateRetryPolicy = stateRetries.throttled,
): LambdaInvoke {
  const step = new LambdaInvoke(scope, name, {
    lambdaFunction: fn,
    ...(payload ? { payload } : {}),
    payloadResponseOnly: true,
    ...(resultPath ? { resultPath } : {}),
  });
  step.addRetry(retryOf(retry));
  return step;
}

/** A step that writes the backup's `state` (and `extra`) into its manifest, through the record-backup Lambda. */
export function recordInManifest(
  scope: Construct,
  name: StateName,
  recordBackup: IFunction,
  state: 'snapshotting' | 'completed' | 'failed',
  extra: Record<string, unknown>,
): TaskStateBase {
  return lambda(
    scope,
    name,
    recordBackup,
    TaskInput.fromObject({
      state,
      cluster: JsonPath.stringAt('$.cluster'),
      backupId: JsonPath.stringAt('$.backupId'),
      repository: JsonPath.stringAt('$.repository'),
      ...extra,
    }),
    JsonPath.DISCARD,
  ).addRetry({
    errors: ['RepositoryUnreachableError'],
    interval: Duration.seconds(5),
    backoffRate: 2,
    maxAttempts: 4,
  });
}

/**
 * A step that counts one `metricName` for the cluster, or with `fleet` for the whole environment, without
 * the Cluster dimension: each name × cluster is a custom metric of its own ($0.30 a month), so a count
 * no alarm needs per cluster (BackupCompleted, BackupFailed, CopyFailed: the events name the cluster,
 * the repository has its backups) is the fleet's.
 */
export function countMetric(
  scope: Construct,
  name: AnyStateName,
  metricName: string,
  options: { fleet?: boolean } = {},
): CallAwsService {
  return putMetric(scope, name, metricName, 1, 'Count', !options.fleet);
}

/** A step that puts one datum of `metricName` for the cluster, its value in seconds read at `valuePath`. */
export function secondsMetric(
  scope: Construct,
  name: AnyStateName,
  metricName: string,
  valuePath: string,
): CallAwsService {
  return putMetric(scope, name, metricName, JsonPath.numberAt(valuePath), 'Seconds');
}

function putMetric(
  scope: Construct,
  name: AnyStateName,
  metricName: string,
  value: number,
  unit: 'Count' | 'Seconds',
  perCluster = true,
): CallAwsService {
  const step = new CallAwsService(scope, name, {
    service: 'cloudwatch',
    action: 'putMetricData',
    // PutMetricData has no resource-level permissions (acknowledged in the stack).
    iamResources: ['*'],
    parameters: {
      Namespace: backupMetrics.namespace,
      MetricData: [
        {
          MetricName: metricName,
          ...(perCluster
            ? { Dimensions: [{ Name: backupMetrics.dimension, Value: JsonPath.stringAt('$.cluster') }] }
            : {}),
          Value: value,
          Unit: unit,
        },
      ],
    },
    resultPath: JsonPath.DISCARD,
  });
  step.addRetry(retryOf(stateRetries.throttled));
  return step;
}

/** A step that puts one pgsnap event of `detailType` (backupEvents, copyEvents) on the default bus. */
export function announce(
  scope: Construct,
  name: AnyStateName,
  detailType: string,
  detail: Record<string, unknown>,
): EventBridgePutEvents {
  const step = new EventBridgePutEvents(scope, name, {
    entries: [{ source: backupEvents.source, detailType, detail: TaskInput.fromObject(detail) }],
    resultPath: JsonPath.DISCARD,
  });
  step.addRetry(retryOf(stateRetries.throttled));
  return step;
}

/** How the state machine runs the agent: its SSM Command document, and the timeouts of the config. */
export interface HostCommands {
  documentName: string;
  timeouts: { hostCommandSeconds: number; heartbeatSeconds: number };
}

/** A step run by the agent on the backup's host; the agent answers with SendTaskSuccess/Failure and heartbeats. */
export function onHost(
  scope: Construct,
  name: StateName,
  host: HostCommands,
  parameters: Partial<Record<AgentDocumentParameter, string>>,
  resultPath: string,
  timeoutSeconds: number,
): CallAwsService {
  return sendCommand(scope, name, host, {
    instanceIdPath: '$.instanceId',
    subjectPath: '$.backupId',
    parameters: { ...parameters, backupId: JsonPath.stringAt('$.backupId') },
    resultPath,
    timeoutSeconds,
  });
}

/**
 * A step that runs `host.documentName` on one instance through SSM Run
 * Command and waits for the agent's task token answer; the cluster, the token
 * and the heartbeat setting are passed to every command. The repository is
 * not: each host uses the one in its own root-owned settings.
 */
export function sendCommand(
  scope: Construct,
  name: AnyStateName,
  host: HostCommands,
  options: {
    instanceIdPath: string;
    /** What the command is about (the backupId, the restoreId), for SSM's command history. */
    subjectPath: string;
    parameters: Record<string, string>;
    resultPath: string;
    /** Seconds, or a path to them in the state (TimeoutSecondsPath), which must exceed the heartbeat. */
    timeoutSeconds: number | string;
  },
): CallAwsService {
  const { timeoutSeconds } = options;
  // A heartbeat no shorter than the timeout adds nothing, and AWS requires it to be shorter (Task state).
  const heartbeatSeconds =
    typeof timeoutSeconds === 'string' || host.timeouts.heartbeatSeconds < timeoutSeconds
      ? host.timeouts.heartbeatSeconds
      : undefined;
  const step = new CallAwsService(scope, name, {
    service: 'ssm',
    action: 'sendCommand',
    integrationPattern: IntegrationPattern.WAIT_FOR_TASK_TOKEN,
    // SendCommand on the hosts is granted by the caller, scoped by instance id or tags.
    iamResources: [
      Stack.of(scope).formatArn({ service: 'ssm', resource: 'document', resourceName: host.documentName }),
    ],
    parameters: {
      DocumentName: host.documentName,
      InstanceIds: JsonPath.array(JsonPath.stringAt(options.instanceIdPath)),
      Comment: JsonPath.format(
        'pgsnap {} of {}',
        JsonPath.stringAt(options.subjectPath),
        JsonPath.stringAt('$.cluster'),
      ),
      Parameters: {
        ...Object.fromEntries(
          Object.entries(options.parameters).map(([key, value]) => [
            key,
            JsonPath.isEncodedJsonPath(value) ? JsonPath.array(value) : [value],
          ]),
        ),
        cluster: JsonPath.array(JsonPath.stringAt('$.cluster')),
        taskToken: JsonPath.array(JsonPath.taskToken),
        // The agent heartbeats by the configured setting even where the state has no heartbeat (abort).
        heartbeatSeconds: [String(host.timeouts.heartbeatSeconds)],
      },
    },
    ...(heartbeatSeconds ? { heartbeatTimeout: Timeout.duration(Duration.seconds(heartbeatSeconds)) } : {}),
    taskTimeout:
      typeof timeoutSeconds === 'string'
        ? Timeout.at(timeoutSeconds)
        : Timeout.duration(Duration.seconds(timeoutSeconds)),
    resultPath: options.resultPath,
  });
  step.addRetry(retryOf(stateRetries.sendCommand));
  return step;
}

/**
 * A Standard state machine as pgsnap deploys each: traced, every state logged
 * for a year but not its data (the SSM steps' parameters carry the task
 * token: anyone who reads the logs could answer for the host, and inputs and
 * outputs carry hosts' answers), and the wildcards CDK's grants need
 * acknowledged with their reasons.
 */
export function pgsnapStateMachine(
  scope: Construct,
  props: {
    stateMachineName: string;
    definition: IChainable;
    comment: string;
    /** What it counts: the reason for its PutMetricData on "*". */
    counters: string;
    functions: IFunction[];
  },
): StateMachine {
  const logs = new LogGroup(scope, 'Logs', {
    retention: RetentionDays.ONE_YEAR,
    removalPolicy: RemovalPolicy.RETAIN,
  });
  const stateMachine = new StateMachine(scope, 'StateMachine', {
    stateMachineName: props.stateMachineName,
    stateMachineType: StateMachineType.STANDARD,
    definitionBody: DefinitionBody.fromChainable(props.definition),
    comment: props.comment,
    tracingEnabled: true,
    logs: { destination: logs, level: LogLevel.ALL, includeExecutionData: false },
  });
  acknowledge(scope, {
    'AwsSolutions-IAM5[Resource::*]': `${wildcardReasons.xray}; nor do cloudwatch:PutMetricData (${props.counters}) and the log delivery actions`,
    ...Object.fromEntries(
      props.functions.map((fn) => [
        `AwsSolutions-IAM5[Resource::${arnReference(fn)}:*]`,
        wildcardReasons.lambdaVersions,
      ]),
    ),
  });
  return stateMachine;
}
