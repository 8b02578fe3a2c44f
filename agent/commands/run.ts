/** `pgsnap run -- CMD…`: begin, run any snapshot command, end; abort if it fails or is interrupted. */
import { type ChildProcess, spawn } from 'node:child_process';
import { BackupInvalidError, messageOf, UsageError } from '#domain/errors';
import { newBackupId } from '#domain/ids';
import { parse } from '../cli/args.ts';
import { beginFlags, parseBeginOptions } from '../cli/begin-options.ts';
import { table } from '../cli/output.ts';
import { printUsage } from '../cli/usage.ts';
import { type Context, createContext } from '../host/context.ts';
import { defaultArchiveTimeoutMs } from '../host/settings.ts';
import type { BackupSession } from '../host/state.ts';
import { connect } from '../postgres/client.ts';
import { createProvider } from '../providers/create.ts';
import type { SnapshotProvider, VolumeSnapshot } from '../providers/provider.ts';
import { abort } from '../session/abort.ts';
import { type BeginOptions, begin } from '../session/begin.ts';
import { recordLocalSnapshots, recordSnapshotReferences } from '../session/catalog.ts';
import { request } from '../session/control.ts';
import { type EndResult, end, noSnapshotNote } from '../session/end.ts';
import { type ClusterPath, clusterPaths } from '../volumes/cluster-paths.ts';

export const runUsage = `pgsnap run [--label L] [--fast] [--max-duration 1h] [--output DIR] [--json] -- CMD ARGS...
pgsnap run --provider copy --snapshot-dir DIR | --provider btrfs | --provider exec -- CMD ARGS... [options]

Begins a backup, takes the snapshot, and ends the backup. The snapshot is CMD
(run with PGSNAP_BACKUP_ID and PGSNAP_START_LSN in its environment) or a
provider that captures the data directory, every tablespace and pg_wal. CMD
names what it took by printing one line per snapshot on its stdout:
  pgsnap-snapshot: REF
A backup is completed only with a snapshot: when CMD names none, the backup
ends stopped, with a note, is not counted as a backup by retention, and run
exits 3. If the
snapshot fails or the run is interrupted, the backup is aborted, what was
captured is deleted, and the exit code is non-zero.`;

export async function runCommand(args: string[]): Promise<number> {
  const { values, command } = parseRunArgs(args);
  if (values.help) return printUsage(runUsage);
  const options = runOptions(values, command);
  const ctx = createContext(values);
  const snapshot = await planSnapshot(values, command);
  // Listen from the start: a slow begin (a spread checkpoint) is interrupted as often as the command.
  const interrupts = listenForInterrupts();
  let session: BackupSession;
  try {
    // The session watches this process: killed with SIGKILL, it could not abort the backup itself.
    session = await begin(ctx, { ...options, ownerPid: process.pid }, interrupts.beginning);
  } catch (error) {
    interrupts.stop();
    if (!interrupts.signal) throw error;
    // begin has stopped the holder: the backup never started.
    return reportAborted(
      ctx,
      options.backupId,
      `interrupted by ${interrupts.signal} before the backup started`,
      interrupts.signal,
    );
  }
  const taken = await takeSnapshot(ctx, session, snapshot, interrupts);
  interrupts.stop();
  const failure = interrupts.signal ? `interrupted by ${interrupts.signal}` : taken.failure;
  if (failure) {
    await abort(ctx, failure, session.backupId);
    // A snapshot of an aborted backup cannot be restored: nothing of it may stay behind.
    await deleteSnapshots(ctx, session, snapshot, taken.snapshots);
    return reportAborted(ctx, session.backupId, failure, interrupts.signal);
  }
  const result = await endBackup(ctx, session, values.output, snapshot, taken.snapshots);
  const unsnapshotted = result.manifest?.state === 'stopped';
  printEnded(
    ctx,
    result,
    snapshot,
    taken.snapshots,
    unsnapshotted ? noSnapshotNote(result.backupId) : undefined,
  );
  // CMD named no snapshot: the backup is not one a restore can use, and a script must not take it for one.
  return unsnapshotted ? 3 : 0;
}

function parseRunArgs(args: string[]) {
  const separator = args.indexOf('--');
  const flags = separator < 0 ? args : args.slice(0, separator);
  const command = separator < 0 ? [] : args.slice(separator + 1);
  const { values } = parse('run', flags, {
    ...beginFlags,
    output: { type: 'string' },
    provider: { type: 'string' },
    'snapshot-dir': { type: 'string' },
  });
  return { values, command };
}

type RunValues = ReturnType<typeof parseRunArgs>['values'];

/** Begin's options, after refusing a run that names no snapshot, or two. */
function runOptions(values: RunValues, command: string[]): BeginOptions & { backupId: string } {
  if (values.provider && values.provider !== 'exec' && command.length > 0) {
    throw new UsageError(
      `pgsnap run: cannot specify both --provider ${values.provider} and a command after --`,
    );
  }
  if (!values.provider && command.length === 0) {
    throw new UsageError(
      'pgsnap run: give the snapshot command after --, e.g. pgsnap run --label nightly -- ./snap.sh',
    );
  }
  const parsed = parseBeginOptions({ ...values, label: values.label ?? 'pgsnap run' });
  // Chosen here so that an interrupted begin can still be reported by its backupId.
  return { ...parsed, backupId: parsed.backupId ?? newBackupId() };
}

/** What takes the snapshot: a provider, with the paths it captures, or the operator's command. */
interface SnapshotPlan {
  provider: SnapshotProvider | undefined;
  paths: ClusterPath[];
  command: string[];
}

async function planSnapshot(values: RunValues, command: string[]): Promise<SnapshotPlan> {
  const provider = values.provider
    ? await createProvider(values.provider, {
        ...(values['snapshot-dir'] ? { snapshotDir: values['snapshot-dir'] } : {}),
        command,
      })
    : undefined;
  return { provider, paths: provider ? await discoverPaths() : [], command };
}

/** SIGINT and SIGTERM: they stop begin while it runs, and are forwarded to the snapshot command once it runs. */
interface Interrupts {
  /** The signal that interrupted the run, once one did. */
  readonly signal: NodeJS.Signals | undefined;
  /** Aborted when a signal comes before the snapshot command runs. */
  readonly beginning: AbortSignal;
  forwardTo(child: ChildProcess): void;
  stop(): void;
}

function listenForInterrupts(): Interrupts {
  let interrupted: NodeJS.Signals | undefined;
  let child: ChildProcess | undefined;
  const beginning = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = signal;
    if (child) stopCommand(child, signal);
    else beginning.abort(new Error(`interrupted by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    get signal() {
      return interrupted;
    },
    beginning: beginning.signal,
    forwardTo(running) {
      child = running;
    },
    stop() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/** Takes the snapshot inside the backup; `failure` says why it was not taken. */
async function takeSnapshot(
  ctx: Context,
  session: BackupSession,
  { provider, paths, command }: SnapshotPlan,
  interrupts: Interrupts,
): Promise<{ snapshots: VolumeSnapshot[]; failure?: string }> {
  ctx.out.progress(
    `backup ${session.backupId} started at ${session.startLsn}; ` +
      (provider
        ? `taking ${provider.name} snapshots of ${paths.map((p) => p.path).join(', ')}`
        : `running ${command.join(' ')}`),
  );
  if (interrupts.signal) return { snapshots: [] };
  if (provider) {
    let snapshots: VolumeSnapshot[] = [];
    try {
      snapshots = await provider.snapshot(session.backupId, paths);
      if (ctx.repository) {
        await recordLocalSnapshots(ctx.repository, session.backupId, provider.name, snapshots, 'taken');
      }
      return { snapshots };
    } catch (error) {
      return { snapshots, failure: `the ${provider.name} snapshot failed: ${messageOf(error)}` };
    }
  }
  const exit = await runSnapshotCommand(ctx, session, command, interrupts);
  if (exit.error) return { snapshots: [], failure: `${command[0]} could not run: ${exit.error.message}` };
  if (exit.code !== 0) {
    const how = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
    return { snapshots: [], failure: `${command.join(' ')} failed (${how})` };
  }
  if (exit.references.length === 0) {
    ctx.out.progress(
      `${command.join(' ')} printed no "${snapshotLinePrefix} REF" line: the backup is not completed without a snapshot`,
    );
  } else if (ctx.repository) {
    await recordSnapshotReferences(ctx.repository, session.backupId, exit.references);
  }
  return { snapshots: [] };
}

/** How a snapshot command names what it took: one line per snapshot on its stdout. */
export const snapshotLinePrefix = 'pgsnap-snapshot:';

/** The references in the `pgsnap-snapshot: REF` lines of `text`. */
export function snapshotReferences(text: string): string[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith(snapshotLinePrefix))
    .map((line) => line.slice(snapshotLinePrefix.length).trim())
    .filter((reference) => reference !== '');
}

async function runSnapshotCommand(
  ctx: Context,
  session: BackupSession,
  command: string[],
  interrupts: Interrupts,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error; references: string[] }> {
  const running = spawn(command[0]!, command.slice(1), {
    // A process group of its own, so that a signal reaches the script and everything it started.
    detached: true,
    stdio: ['inherit', 'pipe', 'inherit'],
    env: { ...process.env, PGSNAP_BACKUP_ID: session.backupId, PGSNAP_START_LSN: session.startLsn },
  });
  interrupts.forwardTo(running);
  // Read for its pgsnap-snapshot lines, and passed on; with --json, stdout carries one document, so to stderr.
  let printed = '';
  running.stdout?.setEncoding('utf8');
  running.stdout?.on('data', (chunk: string) => {
    printed += chunk;
  });
  running.stdout?.pipe(ctx.out.json ? process.stderr : process.stdout, { end: false });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>(
    (resolve) => {
      running.on('error', (error) => resolve({ code: null, signal: null, error }));
      running.on('exit', (code, signal) => {
        // Every line the command printed is read, unless something it left running holds its stdout.
        const done = () => resolve({ code, signal });
        if (!running.stdout || running.stdout.readableEnded) return done();
        const timer = setTimeout(done, 1_000);
        running.stdout.once('end', () => {
          clearTimeout(timer);
          done();
        });
      });
    },
  );
  // Told to the session, which stops the command's group if this run is killed before it ends.
  if (running.pid !== undefined) {
    await request(ctx.state.socketPath, {
      op: 'command',
      backupId: session.backupId,
      group: running.pid,
    }).catch(() => undefined);
  }
  return { ...(await exited), references: snapshotReferences(printed) };
}

async function endBackup(
  ctx: Context,
  session: BackupSession,
  output: string | undefined,
  snapshot: SnapshotPlan,
  snapshots: VolumeSnapshot[],
): Promise<EndResult> {
  try {
    return await end(ctx, {
      ...(output ? { output } : {}),
      archiveTimeoutMs: defaultArchiveTimeoutMs,
      backupId: session.backupId,
    });
  } catch (error) {
    // Only an invalid backup loses its snapshots; a timeout waiting for the archive can be resumed with end.
    if (error instanceof BackupInvalidError) await deleteSnapshots(ctx, session, snapshot, snapshots);
    throw error;
  }
}

async function deleteSnapshots(
  ctx: Context,
  session: BackupSession,
  { provider }: SnapshotPlan,
  snapshots: VolumeSnapshot[],
): Promise<void> {
  if (!provider || snapshots.length === 0) return;
  await provider.delete(snapshots);
  if (!ctx.repository) return;
  await recordLocalSnapshots(ctx.repository, session.backupId, provider.name, snapshots, 'deleted').catch(
    (error: Error) =>
      ctx.out.progress(`the manifest could not record the deleted snapshots: ${error.message}`),
  );
}

function printEnded(
  ctx: Context,
  result: EndResult,
  { provider }: SnapshotPlan,
  snapshots: VolumeSnapshot[],
  note?: string,
): void {
  ctx.out.result(
    { ...result, ...(provider ? { provider: provider.name, snapshots } : {}), ...(note ? { note } : {}) },
    table([
      ['backupId', result.backupId],
      ['startLsn', result.startLsn],
      ['stopLsn', result.stopLsn],
      ...snapshots.map((v): [string, unknown] => [`${v.role} snapshot`, `${v.source} -> ${v.snapshot}`]),
      ...result.artifacts.map((a): [string, unknown] => [
        a.name,
        `${a.path ?? '(not written)'} sha256 ${a.sha256}`,
      ]),
      ['note', note],
    ]),
  );
}

function reportAborted(
  ctx: Context,
  backupId: string,
  reason: string,
  interrupted: NodeJS.Signals | undefined,
): number {
  ctx.out.result(
    { backupId, aborted: true, reason },
    table([
      ['aborted', backupId],
      ['reason', reason],
    ]),
  );
  return interrupted === 'SIGINT' ? 130 : interrupted === 'SIGTERM' ? 143 : 1;
}

async function discoverPaths() {
  const client = await connect();
  try {
    return await clusterPaths(client);
  } finally {
    await client.end();
  }
}

/** How long a snapshot command gets to exit after a signal before it is killed. */
const killAfterMs = 30_000;

function groupAlive(group: number): boolean {
  try {
    process.kill(group, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Forwards the signal to the command's whole process group; once the command
 * itself has exited, whatever it left running is terminated too (background
 * jobs of a non-interactive shell ignore SIGINT), and killed if it lingers.
 */
function stopCommand(child: ChildProcess, signal: NodeJS.Signals): void {
  const group = -child.pid!;
  if (!groupAlive(group)) return;
  process.kill(group, signal);
  const kill = setTimeout(() => groupAlive(group) && process.kill(group, 'SIGKILL'), killAfterMs);
  kill.unref();
  child.once('exit', () => {
    if (groupAlive(group)) process.kill(group, 'SIGTERM');
    clearTimeout(kill);
    const deadline = Date.now() + 5_000;
    const sweep = setInterval(() => {
      if (!groupAlive(group)) clearInterval(sweep);
      else if (Date.now() > deadline) {
        process.kill(group, 'SIGKILL');
        clearInterval(sweep);
      }
    }, 50);
  });
}
