/**
 * A restore driven on one machine by the restore state machine the CDK app
 * synthesizes, as `pgsnap demo` and the e2e tests run it: each Lambda step is
 * its functions/ handler with EC2 answered by the local EC2 (CreateVolume a
 * writable clone of a local snapshot), the repository a file:// URL, and the
 * SSM steps the synthesized restore document run with bash against the
 * local agent, which finds its volumes through the local volumes file.
 */
import { attachRestoreVolumesHandler } from '../functions/attach-restore-volumes.ts';
import { checkRestoreInstanceHandler } from '../functions/check-restore-instance.ts';
import { checkRestoreVolumesHandler } from '../functions/check-restore-volumes.ts';
import { createRestoreVolumesHandler } from '../functions/create-restore-volumes.ts';
import { findRestoreInstanceHandler } from '../functions/find-restore-instance.ts';
import { measureRestoreInitializationHandler } from '../functions/measure-restore-initialization.ts';
import { handler as prepareRestore } from '../functions/prepare-restore.ts';
import { handler as recordRestore } from '../functions/record-restore.ts';
import { releaseRestoreVolumesHandler } from '../functions/release-restore-volumes.ts';
import { terminateRestoreInstanceHandler } from '../functions/terminate-restore-instance.ts';
import type { SynthesizedForLocalRun } from '../infra/local-run/synthesize.ts';
import { restoreStates as states } from '../infra/restore/state-names.ts';
import { hostCommands } from './host-commands.ts';
import type { LocalEc2 } from './local-ec2.ts';
import {
  type Json,
  type LocalBackupRun,
  type LocalStates,
  runLocally,
  setLocalCatalog,
  type TaskHandler,
} from './state-machine.ts';
import { TaskTokenEndpoint } from './task-token-endpoint.ts';

/** What a local restore run binds itself: its counters and announcements recorded, its waits and retries cut. */
export const restoreLocalStates: LocalStates = {
  metrics: [
    states.countRefusedDrill,
    states.countRefused,
    states.noteRto,
    states.noteFullSpeed,
    states.countSucceeded,
    states.countFailed,
  ],
  events: [states.announceRefused, states.announceCompleted, states.announceFailed],
  waits: [
    states.waitForInstance,
    states.waitForAvailable,
    states.waitForAttached,
    states.waitForRelease,
    states.cleanupWaitForRelease,
  ],
  retries: [
    states.prepare,
    states.findInstance,
    states.checkInstance,
    states.createVolumes,
    states.checkAvailable,
    states.attachVolumes,
    states.checkAttached,
    states.restoreOnHost,
    states.recordRunning,
    states.measureInitialization,
    states.release,
    states.terminate,
    states.markCompleted,
    states.cleanupRelease,
    states.cleanupTerminate,
    states.markFailed,
    states.countFailed,
    states.announceFailed,
  ],
};

export interface LocalRestoreRequest {
  synthesized: SynthesizedForLocalRun;
  /** The execution's name: a restoreId, as `pgsnap restore start` names it. */
  executionName: string;
  /** The restore state machine's input (domain/restore/request.ts). */
  input: Json;
  /** The clusters the Lambdas know (their catalog, domain/catalog.ts): the name and its repository. */
  clusters: Array<{ name: string; repository: string }>;
  ec2: LocalEc2;
  agentBinDir: string;
  /** The agent's environment, with PGSNAP_LOCAL_VOLUMES naming the local EC2's volumes file. */
  agentEnv: NodeJS.ProcessEnv;
  detail: (message: string) => void;
  signal?: AbortSignal;
  hostCommands?: Set<Promise<unknown>>;
  onStateEntered?: (name: string) => void;
  /** Local stand-ins for a step, by state name (a test's fault). */
  override?: Partial<Record<string, TaskHandler>>;
  /** Bounds of the volume and instance waits, in seconds (a test's impatience). */
  waitSeconds?: { volumes?: number; instance?: number };
}

export interface LocalRestoreResult {
  run: LocalBackupRun;
  /** What the host answered for the restore (its HostReport) and the teardown. */
  restore?: Record<string, Json>;
  teardown?: Record<string, Json>;
}

export async function runRestoreLocally(request: LocalRestoreRequest): Promise<LocalRestoreResult> {
  const { ec2 } = request;
  setLocalCatalog({
    clusters: request.clusters.map((cluster) => ({
      ...cluster,
      volumeIds: [],
      fastCheckpoint: false,
      maxBackupMinutes: 60,
    })),
  });
  Object.assign(process.env, {
    PGSNAP_VOLUME_SECONDS: String(request.waitSeconds?.volumes ?? 300),
    PGSNAP_INSTANCE_SECONDS: String(request.waitSeconds?.instance ?? 300),
  });
  const result: Partial<LocalRestoreResult> = {};
  const endpoint = await TaskTokenEndpoint.start();
  const onHost = hostCommands({
    document: request.synthesized.restoreDocument,
    endpoint,
    agentBinDir: request.agentBinDir,
    agentEnv: request.agentEnv,
    detail: request.detail,
    signal: request.signal,
    hostCommands: request.hostCommands,
    onAnswer: (command, document) => {
      if (command === 'restore') result.restore = document;
      if (command === 'teardown') result.teardown = document;
    },
  });
  const client = ec2.client;
  const lambda =
    (handler: (event: unknown) => Promise<unknown>): TaskHandler =>
    (input) =>
      handler(input) as Promise<Json>;
  try {
    const run = await runLocally(
      request.synthesized.restoreDefinition,
      {
        executionName: request.executionName,
        stateMachineArn: 'arn:aws:states:eu-west-1:111122223333:stateMachine:pgsnap-demo-restore',
        input: request.input,
        ...(request.onStateEntered ? { onStateEntered: request.onStateEntered } : {}),
        handlers: {
          [states.prepare]: lambda(prepareRestore),
          [states.findInstance]: lambda(findRestoreInstanceHandler(client)),
          [states.checkInstance]: lambda(checkRestoreInstanceHandler(client)),
          [states.createVolumes]: lambda(createRestoreVolumesHandler(client)),
          [states.checkAvailable]: lambda(checkRestoreVolumesHandler(client)),
          [states.attachVolumes]: lambda(attachRestoreVolumesHandler(client)),
          [states.checkAttached]: lambda(checkRestoreVolumesHandler(client)),
          [states.restoreOnHost]: onHost,
          [states.recordRunning]: lambda(recordRestore),
          [states.measureInitialization]: lambda(measureRestoreInitializationHandler(client)),
          [states.teardown]: onHost,
          [states.release]: lambda(releaseRestoreVolumesHandler(client)),
          [states.terminate]: lambda(terminateRestoreInstanceHandler(client)),
          [states.markCompleted]: lambda(recordRestore),
          [states.cleanupTeardown]: onHost,
          [states.cleanupRelease]: lambda(releaseRestoreVolumesHandler(client)),
          [states.cleanupTerminate]: lambda(terminateRestoreInstanceHandler(client)),
          [states.markFailed]: lambda(recordRestore),
          ...request.override,
        },
      },
      restoreLocalStates,
    );
    return { ...result, run };
  } finally {
    await endpoint.close();
  }
}
