/**
 * The restore itself (DESIGN.md "A restore, step by step"): check the
 * request, launch or find the target instance and wait until it runs, make a
 * volume from each snapshot in its zone and wait until they are available,
 * attach them and wait until they are attached, restore on the host (mount,
 * recover, start, check), record what the host reported; a drill then tears
 * everything down. Every failure after the first step goes to `cleanup` with
 * the error in `$.error`; a refused request made nothing and ends at once.
 *
 * The state after the first step is the RestorePlan (domain/restore/steps.ts);
 * everything else about the restore is in its record in the repository.
 */
import { Duration } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import {
  Choice,
  Condition,
  Fail,
  type IChainable,
  type INextable,
  JsonPath,
  Pass,
  Result,
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
import { maxHostStepSeconds } from '#domain/restore/host-time';
import { restoreEvents, restoreMetrics } from '#domain/restore/steps';
import {
  announce,
  countMetric,
  type HostCommands,
  lambda,
  retryOf,
  secondsMetric,
  sendCommand,
} from '../steps.ts';
import { restoreStates as states } from './state-names.ts';

export interface RestoreFunctions {
  prepareRestore: IFunction;
  findRestoreInstance: IFunction;
  checkRestoreInstance: IFunction;
  createRestoreVolumes: IFunction;
  checkRestoreVolumes: IFunction;
  attachRestoreVolumes: IFunction;
  measureRestoreInitialization: IFunction;
  recordRestore: IFunction;
  releaseRestoreVolumes: IFunction;
  terminateRestoreInstance: IFunction;
}

/** The fields every restore step passes to its Lambda. */
export const restoreOf = {
  restoreId: JsonPath.stringAt('$.restoreId'),
  cluster: JsonPath.stringAt('$.cluster'),
  repository: JsonPath.stringAt('$.repository'),
};

/** Throttling and AWS's faults on any restore step (domain/aws-retry.ts); lambda() adds it to each Lambda step. */
export const ec2Retry = retryOf(stateRetries.throttled);

/** A step that writes one phase into the restore record. */
export function recordPhase(
  scope: Construct,
  name: (typeof states)[keyof typeof states],
  fn: IFunction,
  update: Record<string, unknown>,
): TaskStateBase {
  return lambda(scope, name, fn, TaskInput.fromObject({ ...restoreOf, update }), '$.recorded');
}

/** The restore's on-host steps: the restore document on the target instance. */
export function onTarget(
  scope: Construct,
  name: (typeof states)[keyof typeof states],
  host: HostCommands,
  command: 'restore' | 'teardown',
  resultPath: string,
  timeoutSeconds: number | string,
): TaskStateBase {
  return sendCommand(scope, name, host, {
    instanceIdPath: '$.target.instanceId',
    subjectPath: '$.restoreId',
    // The record's digest from the attach step: the host acts only on the record the state machine wrote.
    parameters: {
      command,
      restoreId: JsonPath.stringAt('$.restoreId'),
      recordSha256: JsonPath.stringAt('$.attach.recordSha256'),
      // The host's recovery timeout, always shorter than this step's (domain/restore/host-time.ts).
      ...(command === 'restore' ? { recoverySeconds: JsonPath.stringAt('$.hostTime.recoverySeconds') } : {}),
    },
    resultPath,
    timeoutSeconds,
  }).addRetry({ ...ec2Retry, errors: ['Ssm.InternalServerErrorException'] });
}

/**
 * Remove what the restore made: release (detach, delete) its volumes, one
 * pass at a time until none is left, then terminate the instance it launched.
 * The drill's teardown and the cleanup path both end a restore this way.
 */
export function removeWhatTheRestoreMade(
  scope: Construct,
  names: { start: string; release: string; all: string; wait: string; terminate: string },
  fns: Pick<RestoreFunctions, 'releaseRestoreVolumes' | 'terminateRestoreInstance'>,
  force: boolean,
): { start: State; release: TaskStateBase; terminate: TaskStateBase } {
  const terminate = lambda(
    scope,
    names.terminate as never,
    fns.terminateRestoreInstance,
    // The record names the instance the restore launched, even while its tag does not show.
    TaskInput.fromObject(restoreOf),
    '$.terminated',
  );
  const start = new Pass(scope, names.start, {
    result: Result.fromObject({ passes: 0, deleted: [] }),
    resultPath: '$.release',
  });
  const release = lambda(
    scope,
    names.release as never,
    fns.releaseRestoreVolumes,
    TaskInput.fromObject({ ...restoreOf, force, release: JsonPath.objectAt('$.release') }),
    '$.release',
  );
  const all = new Choice(scope, names.all);
  const wait = new Wait(scope, names.wait, { time: WaitTime.duration(Duration.seconds(5)) });
  start
    .next(release)
    .next(
      all.when(Condition.numberEquals('$.release.remaining', 0), terminate).otherwise(wait.next(release)),
    );
  return { start, release, terminate };
}

export interface RestoreStepsProps {
  functions: RestoreFunctions;
  host: HostCommands;
  /** Where every failure after the first step goes (the cleanup path). */
  cleanup: IChainable;
}

export class RestoreSteps extends StateMachineFragment {
  readonly startState: State;
  readonly endStates: INextable[] = [];

  constructor(scope: Construct, id: string, props: RestoreStepsProps) {
    super(scope, id);
    const { functions: fns, host } = props;
    const caught = { errors: ['States.ALL'], resultPath: '$.error' };

    const prepare = lambda(
      this,
      states.prepare,
      fns.prepareRestore,
      TaskInput.fromObject({
        input: JsonPath.entirePayload,
        executionName: JsonPath.executionName,
        executionStartTime: JsonPath.executionStartTime,
      }),
    ).addRetry({ ...ec2Retry, errors: ['RepositoryUnreachableError'] });
    const refusedDrill = new Choice(this, states.refusedDrill);
    const countRefusedDrill = countMetric(this, states.countRefusedDrill, restoreMetrics.drillFailed);
    const countRefused = countMetric(this, states.countRefused, restoreMetrics.restoreFailed);
    const announceRefused = announce(this, states.announceRefused, restoreEvents.failed, {
      cluster: JsonPath.stringAt('$.cluster'),
      error: JsonPath.stringAt('$.error.Error'),
      cause: JsonPath.stringAt('$.error.Cause'),
    });
    const refused = new Fail(this, states.refused, {
      errorPath: '$.error.Error',
      causePath: '$.error.Cause',
    });

    const findInstance = lambda(
      this,
      states.findInstance,
      fns.findRestoreInstance,
      TaskInput.fromObject({
        ...restoreOf,
        backupId: JsonPath.stringAt('$.backupId'),
        instance: JsonPath.objectAt('$.instance'),
      }),
      '$.target',
    );
    const checkInstance = lambda(
      this,
      states.checkInstance,
      fns.checkRestoreInstance,
      TaskInput.fromObject({
        instanceId: JsonPath.stringAt('$.target.instanceId'),
        since: JsonPath.stringAt('$.target.at'),
      }),
      '$.instanceState',
    );
    const instanceRunning = new Choice(this, states.instanceRunning);
    const waitForInstance = new Wait(this, states.waitForInstance, {
      time: WaitTime.duration(Duration.seconds(10)),
    });

    const createVolumes = lambda(
      this,
      states.createVolumes,
      fns.createRestoreVolumes,
      TaskInput.fromObject({
        ...restoreOf,
        availabilityZone: JsonPath.stringAt('$.target.availabilityZone'),
        options: JsonPath.objectAt('$.volumeOptions'),
      }),
      '$.created',
    );
    const checkVolumes = (
      name: typeof states.checkAvailable | typeof states.checkAttached,
      wanted: string,
      since: string,
    ) =>
      lambda(
        this,
        name,
        fns.checkRestoreVolumes,
        TaskInput.fromObject({
          ...restoreOf,
          wanted,
          instanceId: JsonPath.stringAt('$.target.instanceId'),
          since: JsonPath.stringAt(since),
        }),
        '$.volumes',
      );
    const checkAvailable = checkVolumes(states.checkAvailable, 'available', '$.created.at');
    const allAvailable = new Choice(this, states.allAvailable);
    const waitForAvailable = new Wait(this, states.waitForAvailable, {
      time: WaitTime.duration(Duration.seconds(5)),
    });
    const attach = lambda(
      this,
      states.attachVolumes,
      fns.attachRestoreVolumes,
      TaskInput.fromObject({ ...restoreOf, instanceId: JsonPath.stringAt('$.target.instanceId') }),
      '$.attach',
    );
    const checkAttached = checkVolumes(states.checkAttached, 'attached', '$.attach.at');
    const allAttached = new Choice(this, states.allAttached);
    const waitForAttached = new Wait(this, states.waitForAttached, {
      time: WaitTime.duration(Duration.seconds(3)),
    });

    const restoreOnHost = onTarget(
      this,
      states.restoreOnHost,
      host,
      'restore',
      '$.host',
      /*
       * The longest SSM allows: the host's own recovery timeout (from the plan, sized per restore) always
       * ends first, with its reason, and the heartbeat catches a host gone silent. (A TimeoutSecondsPath
       * from the plan would size it too, but the local runner reads it from the Parameters, not the
       * state input.)
       */
      maxHostStepSeconds,
    ).addRetry({
      // A launched instance's SSM agent registers a minute or two after the instance runs (SendCommand:
      // InvalidInstanceId, "the instance is not registered with SSM").
      errors: ['Ssm.InvalidInstanceIdException'],
      interval: Duration.seconds(20),
      backoffRate: 1,
      maxAttempts: 15,
    });
    const recordRunning = recordPhase(this, states.recordRunning, fns.recordRestore, {
      phase: 'running',
      host: JsonPath.objectAt('$.host'),
    });
    // EBS's own time to full speed when a rate was provisioned (domain/restore/initialization.ts).
    const measureInitialization = lambda(
      this,
      states.measureInitialization,
      fns.measureRestoreInitialization,
      TaskInput.fromObject(restoreOf),
      '$.recorded',
    );
    const isDrill = new Choice(this, states.isDrill);

    const teardown = onTarget(this, states.teardown, host, 'teardown', '$.teardown', 600);
    const {
      start: startRelease,
      release,
      terminate,
    } = removeWhatTheRestoreMade(
      this,
      {
        start: states.startRelease,
        release: states.release,
        all: states.allReleased,
        wait: states.waitForRelease,
        terminate: states.terminate,
      },
      fns,
      false,
    );
    const markCompleted = recordPhase(this, states.markCompleted, fns.recordRestore, {
      phase: 'completed',
      cleanup: {
        deleted: JsonPath.listAt('$.release.deleted'),
        terminated: JsonPath.listAt('$.terminated.terminated'),
      },
    });
    // The RTO as a metric too (the record has it): known once the host saw the server accept connections.
    const rtoKnown = new Choice(this, states.rtoKnown);
    const noteRto = secondsMetric(
      this,
      states.noteRto,
      JsonPath.stringAt('$.outcome.rto'),
      '$.recorded.rtoSeconds',
    );
    // The second RTO number: until every restored volume is initialized (domain/restore/full-speed.ts).
    const fullSpeedKnown = new Choice(this, states.fullSpeedKnown);
    const noteFullSpeed = secondsMetric(
      this,
      states.noteFullSpeed,
      JsonPath.stringAt('$.outcome.fullSpeed'),
      '$.recorded.timeToFullSpeedSeconds',
    );
    const countSucceeded = countMetric(this, states.countSucceeded, JsonPath.stringAt('$.outcome.succeeded'));
    const announceCompleted = announce(
      this,
      states.announceCompleted,
      JsonPath.stringAt('$.outcome.completedEvent'),
      {
        cluster: JsonPath.stringAt('$.cluster'),
        restoreId: JsonPath.stringAt('$.restoreId'),
        backupId: JsonPath.stringAt('$.backupId'),
        mode: JsonPath.stringAt('$.mode'),
        target: JsonPath.stringAt('$.recoveryTarget'),
        instanceId: JsonPath.stringAt('$.target.instanceId'),
      },
    );
    const completed = new Succeed(this, states.completed);

    for (const step of [
      findInstance,
      checkInstance,
      createVolumes,
      checkAvailable,
      attach,
      checkAttached,
      restoreOnHost,
      recordRunning,
      teardown,
      release,
      terminate,
      markCompleted,
    ]) {
      step.addCatch(props.cleanup, caught);
    }
    // Once recorded, the restore is good: failing to count or announce it must not undo it.
    // A measure that fails leaves the model's figure in the record: the restore itself is good.
    measureInitialization.addCatch(isDrill, { resultPath: '$.measureError' });
    noteRto.addCatch(countSucceeded, { resultPath: '$.rtoError' });
    noteFullSpeed.addCatch(countSucceeded, { resultPath: '$.rtoError' });
    countSucceeded.addCatch(announceCompleted, { resultPath: '$.countError' });
    announceCompleted.addCatch(completed, { resultPath: '$.announceError' });
    prepare.addCatch(refusedDrill, caught);
    countRefusedDrill.addCatch(announceRefused, { resultPath: JsonPath.DISCARD });
    countRefused.addCatch(announceRefused, { resultPath: JsonPath.DISCARD });
    announceRefused.addCatch(refused, { resultPath: JsonPath.DISCARD });

    refusedDrill
      .when(
        Condition.and(Condition.isPresent('$.mode'), Condition.stringEquals('$.mode', 'drill')),
        countRefusedDrill.next(announceRefused),
      )
      .otherwise(countRefused.next(announceRefused));
    announceRefused.next(refused);

    prepare
      .next(findInstance)
      .next(checkInstance)
      .next(
        instanceRunning
          .when(Condition.booleanEquals('$.instanceState.running', true), createVolumes)
          .otherwise(waitForInstance.next(checkInstance)),
      );
    createVolumes
      .next(checkAvailable)
      .next(
        allAvailable
          .when(Condition.booleanEquals('$.volumes.ready', true), attach)
          .otherwise(waitForAvailable.next(checkAvailable)),
      );
    countSucceeded.next(announceCompleted).next(completed);
    noteRto.next(
      fullSpeedKnown
        .when(
          Condition.and(
            Condition.isPresent('$.outcome.fullSpeed'),
            Condition.isPresent('$.recorded.timeToFullSpeedSeconds'),
          ),
          noteFullSpeed.next(countSucceeded),
        )
        .otherwise(countSucceeded),
    );
    const succeeded = rtoKnown
      .when(Condition.isPresent('$.recorded.rtoSeconds'), noteRto)
      .otherwise(countSucceeded);
    attach
      .next(checkAttached)
      .next(
        allAttached
          .when(Condition.booleanEquals('$.volumes.ready', true), restoreOnHost)
          .otherwise(waitForAttached.next(checkAttached)),
      );
    restoreOnHost
      .next(recordRunning)
      .next(measureInitialization)
      .next(isDrill.when(Condition.stringEquals('$.mode', 'drill'), teardown).otherwise(succeeded));
    teardown.next(startRelease);
    terminate.next(markCompleted).next(succeeded);
    this.startState = prepare;
  }
}
