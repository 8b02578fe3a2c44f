/**
 * The steps after a backup is completed and announced: the DR copy
 * (dr-copy-steps.ts), then retention (retention-steps.ts), each only where
 * the configuration has its functions.
 */
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { State } from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { DrCopySteps } from '../dr/dr-copy-steps.ts';
import { RetentionSteps } from '../retention/retention-steps.ts';

export interface AfterBackupFunctions {
  copySnapshots?: IFunction;
  checkCopies?: IFunction;
  recordCopies?: IFunction;
  applyRetention?: IFunction;
}

/** Builds the steps in `scope` (the state machine's construct), ending in `done`; returns the first one. */
export function afterBackupSteps(scope: Construct, done: State, functions: AfterBackupFunctions): State {
  const { copySnapshots, checkCopies, recordCopies, applyRetention } = functions;
  const retention = applyRetention
    ? new RetentionSteps(scope, 'Retention', { applyRetention, next: done }).startState
    : done;
  if (!(copySnapshots && checkCopies && recordCopies)) return retention;
  return new DrCopySteps(scope, 'DrCopy', {
    functions: { copySnapshots, checkCopies, recordCopies },
    next: retention,
  }).startState;
}
