/**
 * The one cleanup path every failure of a restore takes after its first
 * step: unmount on the host if an instance was chosen (its failure noted, the
 * path goes on), detach and delete every volume tagged with the restore
 * (also those a step made but never reported), terminate the instance the
 * restore launched (never one it was given), mark the record failed with the
 * reason, count and announce the failure, fail. Entered with `$.error`.
 */
import {
  Choice,
  Condition,
  Fail,
  type INextable,
  JsonPath,
  type State,
  StateMachineFragment,
} from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { restoreEvents } from '#domain/restore/steps';
import { announce, countMetric, type HostCommands, lambda } from '../steps.ts';
import { onTarget, type RestoreFunctions, removeWhatTheRestoreMade } from './restore-steps.ts';
import { restoreStates as states } from './state-names.ts';

export interface RestoreCleanupStepsProps {
  functions: Pick<RestoreFunctions, 'recordRestore' | 'releaseRestoreVolumes' | 'terminateRestoreInstance'>;
  host: HostCommands;
}

export class RestoreCleanupSteps extends StateMachineFragment {
  readonly startState: State;
  readonly endStates: INextable[] = [];

  constructor(scope: Construct, id: string, props: RestoreCleanupStepsProps) {
    super(scope, id);
    const { functions: fns } = props;
    const hasInstance = new Choice(this, states.hasInstance);
    const teardown = onTarget(this, states.cleanupTeardown, props.host, 'teardown', '$.teardown', 600);
    // The host may not have unmounted (it may be gone): the volumes are detached anyway.
    const {
      start: startRelease,
      release,
      terminate,
    } = removeWhatTheRestoreMade(
      this,
      {
        start: states.cleanupStartRelease,
        release: states.cleanupRelease,
        all: states.cleanupAllReleased,
        wait: states.cleanupWaitForRelease,
        terminate: states.cleanupTerminate,
      },
      fns,
      true,
    );
    // The whole state: what the cleanup released and terminated is there only as far as it got.
    const markFailed = lambda(this, states.markFailed, fns.recordRestore, undefined, '$.recorded');
    const countFailed = countMetric(this, states.countFailed, JsonPath.stringAt('$.outcome.failed')).addRetry(
      {
        maxAttempts: 2,
      },
    );
    const announceFailed = announce(this, states.announceFailed, restoreEvents.failed, {
      cluster: JsonPath.stringAt('$.cluster'),
      restoreId: JsonPath.stringAt('$.restoreId'),
      backupId: JsonPath.stringAt('$.backupId'),
      mode: JsonPath.stringAt('$.mode'),
      error: JsonPath.stringAt('$.error.Error'),
      cause: JsonPath.stringAt('$.error.Cause'),
    }).addRetry({ maxAttempts: 2 });
    const failed = new Fail(this, states.failed, { errorPath: '$.error.Error', causePath: '$.error.Cause' });

    // A cleanup step that fails is recorded and the path goes on: the failure is announced whatever happens.
    teardown.addCatch(startRelease, { resultPath: '$.teardown' });
    release.addCatch(terminate, { resultPath: '$.releaseError' });
    terminate.addCatch(markFailed, { resultPath: '$.terminateError' });
    markFailed.addCatch(countFailed, { resultPath: '$.recordError' });
    countFailed.addCatch(announceFailed, { resultPath: JsonPath.DISCARD });
    announceFailed.addCatch(failed, { resultPath: JsonPath.DISCARD });
    // Before the attach step nothing was mounted, and there is no record digest for the host to check.
    hasInstance
      .when(
        Condition.and(
          Condition.isPresent('$.target.instanceId'),
          Condition.isPresent('$.attach.recordSha256'),
        ),
        teardown,
      )
      .otherwise(startRelease);
    teardown.next(startRelease);
    terminate.next(markFailed).next(countFailed).next(announceFailed).next(failed);
    this.startState = hasInstance;
  }
}
