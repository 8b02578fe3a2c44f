/**
 * Runs the synthesized backup definition with aws-local-stepfunctions, every
 * Task bound to a local handler by its state name, and records what a user
 * would look at afterwards: the outcome, the events, the metrics, and each
 * state entered (the transitions Step Functions would bill). Used by `pgsnap
 * demo`, the end-to-end tests and bench/state-machine. Waits between snapshot
 * polls and retry intervals are cut to nothing: a local snapshot is complete
 * when taken, and a retry here is for a local fault.
 */
import './promise-with-resolvers.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateMachine } from 'aws-local-stepfunctions';
import type { TaskAnswers } from '#domain/budget/queue';
import { type CatalogInput, catalogSchema } from '#domain/catalog';
import { type StateName, states } from '../infra/backup/state-names.ts';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type TaskHandler = (input: Json) => Promise<Json> | Json;

export interface LocalBackupRun {
  /** The Fail state's error and cause, when the execution failed. */
  failure?: { error: string; cause: string };
  output?: Json;
  /** States in the order they were entered. */
  entered: string[];
  events: Array<{ detailType: string; detail: Record<string, Json> }>;
  /** Each metric datum; `cluster` only where it carries the Cluster dimension (the backup's counts are the fleet's). */
  metrics: Array<{ name: string; cluster?: string; value: number }>;
}

let catalogDirectory: string | undefined;
let catalogFiles = 0;

/**
 * Gives the Lambdas of a local run their cluster catalog as the stack would (domain/catalog.ts): a file,
 * named in PGSNAP_CATALOG, in a directory of this process removed when it exits.
 */
export function setLocalCatalog(catalog: Omit<CatalogInput, 'schemaVersion'>): string {
  if (!catalogDirectory) {
    const directory = mkdtempSync(join(tmpdir(), 'pgsnap-catalog-'));
    process.once('exit', () => rmSync(directory, { recursive: true, force: true }));
    catalogDirectory = directory;
  }
  const file = join(catalogDirectory, `catalog-${++catalogFiles}.json`);
  writeFileSync(file, JSON.stringify(catalogSchema.parse({ schemaVersion: 1, ...catalog })));
  process.env.PGSNAP_CATALOG = file;
  return file;
}

export const taskToken = 'AAAAKgAAAAIAAAAAAAAAAdGVzdC10b2tlbg==';

/** The states of one state machine that a local run binds itself: metrics and events recorded, waits and retries cut. */
export interface LocalStates {
  metrics: string[];
  events: string[];
  waits: string[];
  retries: string[];
}

const backupStates: LocalStates = {
  metrics: [states.countCompleted, states.countFailed],
  events: [states.announceCompleted, states.announceFailed],
  waits: [states.waitForSnapshots, states.waitForCopies],
  retries: [
    states.snapshot,
    states.checkSnapshots,
    states.deleteSnapshots,
    states.countCompleted,
    states.countFailed,
    states.announceCompleted,
    states.announceFailed,
    states.prepare,
    states.acquireBudget,
    states.releaseBudget,
    states.releaseBudgetOnFailure,
    states.acquireCopies,
    states.releaseCopies,
    states.releaseCopiesOnFailure,
    states.copy,
    states.checkCopies,
    states.recordCopies,
    states.recordFailedCopies,
    states.countCopyFailed,
    states.announceCopyFailed,
    states.applyRetention,
  ],
};

export interface LocalRunOptions {
  /** As `pgsnap backup start` names it (the backupId), or as the console does (a UUID). */
  executionName: string;
  input: Json;
  stateMachineArn: string;
  handlers: Partial<Record<string, TaskHandler>>;
  /** Called as each state is entered, for progress. */
  onStateEntered?: (name: string) => void;
}

export function runLocalBackup(
  definition: Record<string, unknown>,
  options: LocalRunOptions & { handlers: Partial<Record<StateName, TaskHandler>> },
): Promise<LocalBackupRun> {
  return runLocally(definition, options, backupStates);
}

/** Runs a synthesized definition locally, `local` naming its metric, event, wait and retried states. */
export async function runLocally(
  definition: Record<string, unknown>,
  options: LocalRunOptions,
  local: LocalStates,
): Promise<LocalBackupRun> {
  const run: LocalBackupRun = { entered: [], events: [], metrics: [] };
  const record =
    (kind: 'event' | 'metric'): TaskHandler =>
    (input) => {
      const parameters = input as Record<string, Json>;
      if (kind === 'event') {
        for (const entry of parameters.Entries as Array<Record<string, Json>>) {
          const detail = typeof entry.Detail === 'string' ? JSON.parse(entry.Detail) : entry.Detail;
          run.events.push({ detailType: entry.DetailType as string, detail });
        }
      } else {
        for (const datum of parameters.MetricData as Array<Record<string, Json>>) {
          // The backup's counts are the fleet's (no Cluster dimension); the restore's carry the cluster.
          const dimensions = datum.Dimensions as Array<{ Name: string; Value: string }> | undefined;
          const cluster = dimensions?.[0]?.Value;
          run.metrics.push({
            name: datum.MetricName as string,
            ...(cluster ? { cluster } : {}),
            value: datum.Value as number,
          });
        }
      }
      return {};
    };
  const machine = new StateMachine(definition as never, {
    validationOptions: { checkArn: false, checkPaths: false },
  });
  const execution = machine.run(options.input, {
    overrides: {
      taskResourceLocalHandlers: {
        ...Object.fromEntries(local.metrics.map((name) => [name, record('metric')])),
        ...Object.fromEntries(local.events.map((name) => [name, record('event')])),
        ...options.handlers,
      } as never,
      waitTimeOverrides: Object.fromEntries(local.waits.map((name) => [name, 0])),
      retryIntervalOverrides: Object.fromEntries(local.retries.map((name) => [name, 0])),
    },
    // aws-local-stepfunctions sets $$.Execution.StartTime itself, to when the run starts, as Step Functions does.
    context: {
      Execution: {
        Id: `${options.stateMachineArn.replace(':stateMachine:', ':execution:')}:${options.executionName}`,
        Name: options.executionName,
      },
      StateMachine: { Id: options.stateMachineArn, Name: options.stateMachineArn.split(':').pop() },
      Task: { Token: taskToken },
    } as never,
  });
  const logging = (async () => {
    for await (const event of execution.eventLogs) {
      if (event.type !== 'StateEntered') continue;
      run.entered.push(event.state.name);
      try {
        options.onStateEntered?.(event.state.name);
      } catch {
        // Progress is not the execution's business: a failing callback must not end the event loop.
      }
    }
  })();
  try {
    run.output = (await execution.result) as Json;
  } catch (error) {
    const cause = (error as { cause?: { name: string; message: string } }).cause;
    if (!cause) throw error;
    run.failure = { error: cause.name, cause: cause.message };
  }
  await logging;
  return run;
}

/*
 * `.waitForTaskToken` Lambda steps on one machine: each attempt of such a step
 * gets a fresh token, its handler runs with the token in its payload (as
 * Step Functions puts `$$.Task.Token` there), and the step's result is what
 * the token is answered with, by that handler or by any later one (a budget's
 * return waking a waiter). A token no longer waited on (its attempt timed
 * out) is refused as Step Functions refuses it, with TaskTimedOut.
 */

export class TaskTimedOut extends Error {
  override name = 'TaskTimedOut';
}

export class LocalTaskTokens implements TaskAnswers {
  private readonly waiting = new Map<string, (output: Json) => void>();
  private issued = 0;
  /** Every answer given, in order (what a test checks: who was woken). */
  readonly answered: Array<{ token: string; output: Json }> = [];

  /** @param onAnswer called before each answer (the bench counts and throttles SendTaskSuccess there). */
  constructor(private readonly onAnswer?: () => void) {}

  async succeed(token: string, output: unknown): Promise<void> {
    this.onAnswer?.();
    const resolve = this.waiting.get(token);
    if (!resolve) throw new TaskTimedOut(`Task Timed Out: '${token}'`);
    this.waiting.delete(token);
    this.answered.push({ token, output: output as Json });
    resolve(output as Json);
  }

  /** Whether some attempt still waits for its token. */
  get waiters(): number {
    return this.waiting.size;
  }

  /** The local handler of a `.waitForTaskToken` Lambda step calling `handle` (its Parameters hold the Payload). */
  task(handle: (event: Json) => Promise<unknown>): (input: Json) => Promise<Json> {
    return async (input) => {
      const token = `local-task-token-${++this.issued}`;
      const promise = new Promise<Json>((resolve) => this.waiting.set(token, resolve));
      const payload =
        (input as { Payload?: Record<string, Json> }).Payload ?? (input as Record<string, Json>);
      try {
        await handle({ ...payload, taskToken: token });
      } catch (error) {
        // The Lambda failed: the step fails with its error, as Step Functions' Lambda integration does.
        this.waiting.delete(token);
        throw error;
      }
      return promise;
    };
  }
}
