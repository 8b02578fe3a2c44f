/**
 * A backup driven on one machine by the state machine the CDK app synthesizes,
 * as `pgsnap demo` runs it: aws-local-stepfunctions executes the definition,
 * and each Task is bound to the code that runs it in AWS:
 * - the Lambda steps are the functions/ handlers, with EC2 answered by the
 *   local snapshot provider (local-ec2.ts) and the repository a file:// URL;
 * - the SSM steps render the synthesized agent document and run it with bash,
 *   as SSM Run Command would, and the agent answers with its task token
 *   through a local SendTaskSuccess/SendTaskFailure endpoint;
 * - the metric and event steps are shown as progress.
 */
import { checkSnapshotsHandler } from '../functions/check-snapshots.ts';
import { createSnapshotsHandler } from '../functions/create-snapshots.ts';
import { deleteSnapshotsHandler } from '../functions/delete-snapshots.ts';
import { prepareBackupHandler } from '../functions/prepare-backup.ts';
import { handler as recordBackup } from '../functions/record-backup.ts';
import { states } from '../infra/backup/state-names.ts';
import type { SynthesizedForLocalRun } from '../infra/local-run/synthesize.ts';
import { hostCommands } from './host-commands.ts';
import type { LocalEc2 } from './local-ec2.ts';
import { localBudgetHandlers, setLocalBudgetEnvironment } from './snapshot-budget.ts';
import { type Json, type LocalBackupRun, runLocalBackup, setLocalCatalog } from './state-machine.ts';
import { TaskTokenEndpoint } from './task-token-endpoint.ts';

export interface LocalBackupRequest {
  synthesized: SynthesizedForLocalRun;
  backupId: string;
  cluster: string;
  label: string;
  /** The configuration the Lambdas read (the catalog, domain/catalog.ts) for this one cluster. */
  target: { volumeIds: string[]; fastCheckpoint: boolean; maxBackupMinutes: number; repository: string };
  ec2: LocalEc2;
  /** A directory with an executable `pgsnap` (the agent as installed on a host). */
  agentBinDir: string;
  /** The agent's environment: the libpq settings and its state directory. */
  agentEnv: NodeJS.ProcessEnv;
  progress: (message: string) => void;
  detail: (message: string) => void;
  /** Ends the host commands under way, and starts no other (the demo interrupted). */
  signal?: AbortSignal;
  /** Host commands still running are kept here until they exit, so that a cleanup can wait for them. */
  hostCommands?: Set<Promise<unknown>>;
  /** Called as each state is entered, before its work starts. */
  onStateEntered?: (name: string) => void;
}

export interface LocalBackupResult {
  run: LocalBackupRun;
  /** What the agent answered for begin and end (its --json documents). */
  begin?: Record<string, Json>;
  end?: Record<string, Json>;
  snapshotMs?: number;
}

export async function runBackupLocally(request: LocalBackupRequest): Promise<LocalBackupResult> {
  const { synthesized, ec2, progress, detail } = request;
  const stateMachineArn = 'arn:aws:states:eu-west-1:111122223333:stateMachine:pgsnap-demo-backup';
  setLocalCatalog({ clusters: [{ name: request.cluster, instanceId: ec2.instanceId, ...request.target }] });
  Object.assign(process.env, {
    PGSNAP_FIRST_POLL_SECONDS: '1',
    PGSNAP_MAX_POLL_SECONDS: '5',
    PGSNAP_SNAPSHOT_HOURS: '1',
  });
  setLocalBudgetEnvironment();
  const result: Partial<LocalBackupResult> = {};
  const endpoint = await TaskTokenEndpoint.start();
  const onHost = hostCommands({
    document: synthesized.agentDocument,
    endpoint,
    agentBinDir: request.agentBinDir,
    agentEnv: request.agentEnv,
    detail,
    signal: request.signal,
    hostCommands: request.hostCommands,
    onAnswer: (command, document) => {
      if (command === 'begin') result.begin = document;
      if (command === 'end') result.end = document;
    },
  });
  const ec2Client = ec2.client;
  const createSnapshots = createSnapshotsHandler(ec2Client);
  const started = Date.now();
  try {
    const run = await runLocalBackup(synthesized.definition, {
      executionName: request.backupId,
      stateMachineArn,
      input: { cluster: request.cluster, label: request.label, trigger: 'cli' },
      onStateEntered: (name) => {
        request.onStateEntered?.(name);
        progress(`state machine: ${name}`);
      },
      handlers: {
        ...localBudgetHandlers(),
        [states.prepare]: (input) =>
          prepareBackupHandler({ ec2: ec2Client })(input) as unknown as Promise<Json>,
        [states.begin]: onHost,
        [states.snapshot]: async (input) => {
          const at = Date.now();
          const set = await createSnapshots(input);
          result.snapshotMs = Date.now() - at;
          return set as unknown as Json;
        },
        [states.end]: onHost,
        [states.checkSnapshots]: (input) =>
          checkSnapshotsHandler(ec2Client)(input) as unknown as Promise<Json>,
        [states.abort]: onHost,
        [states.deleteSnapshots]: (input) =>
          deleteSnapshotsHandler(ec2Client)(input) as unknown as Promise<Json>,
        [states.recordSnapshots]: (input) => recordBackup(input) as unknown as Promise<Json>,
        [states.markCompleted]: (input) => recordBackup(input) as unknown as Promise<Json>,
        [states.markFailed]: (input) => recordBackup(input) as unknown as Promise<Json>,
      },
    });
    for (const metric of run.metrics) detail(`metric ${metric.name} (cluster ${metric.cluster})`);
    for (const event of run.events) detail(`event "${event.detailType}"`);
    detail(
      `execution ${run.failure ? `failed: ${run.failure.error}: ${run.failure.cause}` : 'succeeded'} ` +
        `after ${run.entered.length} states in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    return { ...result, run };
  } finally {
    await endpoint.close();
  }
}
