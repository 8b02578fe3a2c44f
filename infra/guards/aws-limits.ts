/**
 * AWS's documented limits on what the stacks define, checked when the app is
 * synthesized (a validation on the Pgsnap construct), so that `cdk synth`
 * fails with the state and the rule instead of `cdk deploy` failing, or an
 * execution timing out, in AWS.
 *
 * - Task states (Amazon States Language, Task state fields): TimeoutSeconds and
 *   HeartbeatSeconds are positive integers, and HeartbeatSeconds is smaller
 *   than TimeoutSeconds; Step Functions accepts at most 99999999 for either.
 * - SSM SendCommand (API reference): Comment is at most 100 characters; each
 *   parameter is one the document declares, and a value fixed in the
 *   definition matches the document's allowedValues or allowedPattern.
 * - EventBridge Scheduler CreateSchedule (API reference): Description at most
 *   512 characters, ScheduleExpression at most 256, a rate of a positive whole
 *   number of minutes, hours or days or a cron of six fields, RetryPolicy
 *   MaximumRetryAttempts 0–185 and MaximumEventAgeInSeconds 60–86400.
 * - A Lambda-backed custom resource's request (`customResourceRequestViolations`).
 */
import { Stack } from 'aws-cdk-lib';
import { CfnSchedule } from 'aws-cdk-lib/aws-scheduler';
import { CfnStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import type { IConstruct, IValidation } from 'constructs';

type State = Record<string, unknown>;
export interface StatesDefinition {
  States: Record<string, State>;
}

const maxTaskSeconds = 99_999_999;
const maxCommentLength = 100;

export interface DocumentParameter {
  allowedValues?: readonly string[];
  allowedPattern?: string;
  /** The longest value the pattern admits, where it is bounded: it bounds a Comment built from it. */
  maxLength?: number;
}

export interface SendCommandBounds {
  /** The agent document's parameters. */
  parameters: Record<string, DocumentParameter>;
  /** The longest value at each input path a Comment may use (`$.cluster`). */
  inputMaxLength: Record<string, number>;
}

/** Every state of the definition, branches and Map processors included, by name. */
function allStates(definition: StatesDefinition): Array<[string, State]> {
  return Object.entries(definition.States).flatMap(([name, state]) => [
    [name, state] as [string, State],
    ...((state.Branches as StatesDefinition[] | undefined) ?? []).flatMap(allStates),
    ...[state.ItemProcessor, state.Iterator]
      .filter((p): p is StatesDefinition => typeof p === 'object' && p !== null)
      .flatMap(allStates),
  ]);
}

const isPositiveInteger = (value: unknown): value is number =>
  Number.isInteger(value) && (value as number) >= 1;

/** The longest text a `States.Format('…', $.a, $.b)` Comment can produce, or a reason it has no bound. */
function formatBound(expression: string, inputMaxLength: Record<string, number>): number | string {
  const match = /^States\.Format\('((?:[^'\\]|\\.)*)'((?:\s*,\s*\$[\w.]+)*)\)$/.exec(expression);
  if (!match) return `${expression} is not a States.Format of input paths`;
  const [, template, args] = match;
  const paths = (args ?? '')
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  let length = template!.replace(/\{\}/g, '').replace(/\\(.)/g, '$1').length;
  for (const path of paths) {
    const max = inputMaxLength[path];
    if (max === undefined) return `the length of ${path} has no known bound`;
    length += max;
  }
  return length;
}

function sendCommandViolations(name: string, state: State, bounds: SendCommandBounds): string[] {
  const violations: string[] = [];
  const parameters = (state.Parameters ?? state.Arguments ?? {}) as Record<string, unknown>;
  const comment = parameters.Comment;
  const dynamicComment = parameters['Comment.$'];
  if (typeof comment === 'string' && comment.length > maxCommentLength) {
    violations.push(
      `Task state "${name}": SendCommand's Comment is ${comment.length} characters; SSM allows at most ${maxCommentLength}`,
    );
  }
  if (typeof dynamicComment === 'string') {
    const bound = formatBound(dynamicComment, bounds.inputMaxLength);
    if (typeof bound === 'string') {
      violations.push(
        `Task state "${name}": SendCommand's Comment cannot be bounded to ${maxCommentLength} characters: ${bound}`,
      );
    } else if (bound > maxCommentLength) {
      violations.push(
        `Task state "${name}": SendCommand's Comment can be ${bound} characters; SSM allows at most ${maxCommentLength}`,
      );
    }
  }
  const given = (parameters.Parameters ?? {}) as Record<string, unknown>;
  for (const [key, value] of Object.entries(given)) {
    const parameter = key.replace(/\.\$$/, '');
    const declared = bounds.parameters[parameter];
    if (!declared) {
      violations.push(
        `Task state "${name}": SendCommand parameter ${parameter} is not declared by the document`,
      );
      continue;
    }
    if (key.endsWith('.$')) continue; // known only at run time; SSM checks it against the document then
    for (const item of Array.isArray(value) ? value : [value]) {
      const text = String(item);
      if (declared.allowedValues && !declared.allowedValues.includes(text)) {
        violations.push(
          `Task state "${name}": SendCommand parameter ${parameter}=${text} is not one of the document's allowedValues`,
        );
      }
      if (declared.allowedPattern && !new RegExp(declared.allowedPattern).test(text)) {
        violations.push(
          `Task state "${name}": SendCommand parameter ${parameter}=${text} does not match the document's allowedPattern ${declared.allowedPattern}`,
        );
      }
    }
  }
  return violations;
}

/** What breaks AWS's documented limits for Task states (and the SendCommand tasks) of `definition`. */
export function taskStateViolations(definition: StatesDefinition, bounds: SendCommandBounds): string[] {
  const violations: string[] = [];
  for (const [name, state] of allStates(definition)) {
    if (state.Type !== 'Task') continue;
    const timeout = state.TimeoutSeconds;
    const heartbeat = state.HeartbeatSeconds;
    for (const [field, value] of [
      ['TimeoutSeconds', timeout],
      ['HeartbeatSeconds', heartbeat],
    ] as const) {
      if (value === undefined) continue;
      if (!isPositiveInteger(value) || value > maxTaskSeconds) {
        violations.push(
          `Task state "${name}": ${field} (${String(value)}) must be a whole number from 1 to ${maxTaskSeconds}`,
        );
      }
    }
    // Without TimeoutSeconds a task may run a year (the execution's limit), so any heartbeat is shorter.
    if (typeof heartbeat === 'number' && typeof timeout === 'number' && heartbeat >= timeout) {
      violations.push(
        `Task state "${name}": HeartbeatSeconds (${heartbeat}) must be less than TimeoutSeconds (${timeout}), as AWS's Task state requires`,
      );
    }
    if (
      typeof state.Resource === 'string' &&
      state.Resource.startsWith('arn:aws:states:::aws-sdk:ssm:sendCommand')
    ) {
      violations.push(...sendCommandViolations(name, state, bounds));
    }
  }
  return violations;
}

export interface ScheduleProperties {
  name: string;
  description?: string | undefined;
  scheduleExpression: string;
  retryPolicy?:
    | { maximumRetryAttempts?: number | undefined; maximumEventAgeInSeconds?: number | undefined }
    | undefined;
}

/** What breaks EventBridge Scheduler's documented limits for one schedule. */
export function scheduleViolations(schedule: ScheduleProperties): string[] {
  const violations: string[] = [];
  const where = `Schedule "${schedule.name}"`;
  if (schedule.description !== undefined && schedule.description.length > 512) {
    violations.push(
      `${where}: Description is ${schedule.description.length} characters; Scheduler allows at most 512`,
    );
  }
  const expression = schedule.scheduleExpression;
  if (expression.length > 256) {
    violations.push(
      `${where}: ScheduleExpression is ${expression.length} characters; Scheduler allows at most 256`,
    );
  }
  const rate = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(expression);
  const cron = /^cron\((.+)\)$/.exec(expression);
  if (expression.startsWith('rate(') && (!rate || Number(rate[1]) < 1)) {
    violations.push(
      `${where}: ${expression} must be rate(value unit): a positive whole number of minutes, hours or days`,
    );
  } else if (cron && cron[1]!.trim().split(/\s+/).length !== 6) {
    violations.push(
      `${where}: ${expression} must have six fields (minutes hours day-of-month month day-of-week year)`,
    );
  } else if (!rate && !cron && !expression.startsWith('at(')) {
    violations.push(`${where}: ${expression} is none of rate(...), cron(...) or at(...)`);
  }
  const retry = schedule.retryPolicy;
  const attempts = retry?.maximumRetryAttempts;
  if (attempts !== undefined && !(Number.isInteger(attempts) && attempts >= 0 && attempts <= 185)) {
    violations.push(`${where}: MaximumRetryAttempts (${attempts}) must be from 0 to 185`);
  }
  const age = retry?.maximumEventAgeInSeconds;
  if (age !== undefined && !(Number.isInteger(age) && age >= 60 && age <= 86_400)) {
    violations.push(`${where}: MaximumEventAgeInSeconds (${age}) must be from 60 to 86400`);
  }
  return violations;
}

/**
 * The largest request CloudFormation may send a Lambda-backed custom resource that we accept. "CloudFormation
 * invokes your Lambda function asynchronously with an event that includes a callback URL" (Lambda developer
 * guide, "Using AWS Lambda with CloudFormation"), and Lambda's Invoke API reference: "For synchronous
 * invocations, the maximum payload size is 6 MB. For asynchronous invocations, the maximum payload size is
 * 1 MB." — 256 KB until 2025, as InvokeAsync still says ("The payload limit is 256KB"), and Lambda may refuse
 * a payload under 1 MB whose "size after internal serialization exceeds the maximum allowed size for
 * asynchronous invocations" (SerializedRequestEntityTooLargeException). We hold the older 256 KB: a 4× margin.
 */
export const maxCustomResourceRequestBytes = 256 * 1024;
/**
 * What a request carries besides the properties: request type, service token, the pre-signed response URL
 * (about 1.5 KB), stack, request and logical ids, the physical id, the resource type.
 */
export const customResourceEnvelopeBytes = 4 * 1024;

/**
 * What breaks the request size of the custom resource `name` whose properties take `propertiesBytes` as
 * deployed: an update carries the old properties beside the new (OldResourceProperties), so twice them.
 */
export function customResourceRequestViolations(name: string, propertiesBytes: number): string[] {
  const request = 2 * propertiesBytes + customResourceEnvelopeBytes;
  return request > maxCustomResourceRequestBytes
    ? [
        `${name}: an update's request to its Lambda would be about ${request} bytes (twice its ${propertiesBytes} ` +
          `bytes of properties, old and new), past the ${maxCustomResourceRequestBytes} bytes held for an ` +
          'asynchronous invocation; pass the content by S3 location (a CDK asset) instead',
      ]
    : [];
}

/** A definition string as synthesized (a join of text and references), with each reference as a placeholder. */
function definitionOf(scope: IConstruct, machine: CfnStateMachine): StatesDefinition {
  const resolved = Stack.of(scope).resolve(machine.definitionString) as
    | string
    | { 'Fn::Join': [string, unknown[]] };
  if (typeof resolved === 'string') return JSON.parse(resolved);
  const text = resolved['Fn::Join'][1]
    .map((part) => (typeof part === 'string' ? part : 'reference'))
    .join('');
  return JSON.parse(text);
}

/** The validation: every state machine and schedule under `scope`, against AWS's limits. */
export class AwsLimits implements IValidation {
  constructor(
    private readonly scope: IConstruct,
    private readonly bounds: SendCommandBounds,
  ) {}

  validate(): string[] {
    const violations: string[] = [];
    for (const node of this.scope.node.findAll()) {
      if (node instanceof CfnStateMachine) {
        violations.push(...taskStateViolations(definitionOf(this.scope, node), this.bounds));
      } else if (node instanceof CfnSchedule) {
        const retry = Stack.of(this.scope).resolve(node.target) as {
          retryPolicy?: ScheduleProperties['retryPolicy'];
        };
        violations.push(
          ...scheduleViolations({
            name: node.node.path,
            description: node.description,
            scheduleExpression: node.scheduleExpression,
            retryPolicy: retry.retryPolicy,
          }),
        );
      }
    }
    return violations;
  }
}
