/** `pgsnap run -- CMD…`: begin, run any snapshot command, end; abort if it fails or is interrupted. */
import { type ChildProcess, spawn } from 'node:child_process';
import { UsageError } from '#domain/errors';
import { newBackupId } from '#domain/input';
import { parse } from '../cli-args.ts';
import { type Context, createContext } from '../context.ts';
import { table } from '../output.ts';
import type { SessionRecord } from '../state.ts';
import { abort } from './abort.ts';
import { begin, beginFlags, help, parseBeginOptions } from './begin.ts';
import { defaultArchiveTimeoutMs, end } from './end.ts';

export const runUsage = `pgsnap run [--label L] [--fast] [--max-duration 1h] [--output DIR] [--json] -- CMD ARGS...

Begins a backup, runs CMD with PGSNAP_BACKUP_ID and PGSNAP_START_LSN in its
environment, and ends the backup. If CMD fails or the run is interrupted, the
backup is aborted and the exit code is non-zero.`;

export async function runCommand(args: string[]): Promise<number> {
  const separator = args.indexOf('--');
  const flags = separator < 0 ? args : args.slice(0, separator);
  const command = separator < 0 ? [] : args.slice(separator + 1);
  const { values } = parse('run', flags, { ...beginFlags, output: { type: 'string' } });
  if (values.help) return help(runUsage);
  if (command.length === 0) {
    throw new UsageError(
      'pgsnap run: give the snapshot command after --, e.g. pgsnap run --label nightly -- ./snap.sh',
    );
  }
  const parsed = parseBeginOptions({ ...values, label: values.label ?? 'pgsnap run' });
  // Chosen here so that an interrupted begin can still be reported by its backupId.
  const options = { ...parsed, backupId: parsed.backupId ?? newBackupId() };
  const ctx = createContext(values);

  // Listen from the start: a slow begin (a spread checkpoint) is interrupted as often as the command.
  let interrupted: NodeJS.Signals | undefined;
  let child: ChildProcess | undefined;
  const beginning = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = signal;
    if (child) child.kill(signal);
    else beginning.abort(new Error(`interrupted by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let session: SessionRecord;
  try {
    session = await begin(ctx, options, beginning.signal);
  } catch (error) {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (!interrupted) throw error;
    // begin has stopped the holder: the backup never started.
    return reportAborted(
      ctx,
      options.backupId,
      `interrupted by ${interrupted} before the backup started`,
      interrupted,
    );
  }
  ctx.out.progress(`backup ${session.backupId} started at ${session.startLsn}; running ${command.join(' ')}`);

  let exit: { code: number | null; signal: NodeJS.Signals | null; error?: Error } | undefined;
  if (!interrupted) {
    const running = spawn(command[0]!, command.slice(1), {
      stdio: ['inherit', ctx.out.json ? 'pipe' : 'inherit', 'inherit'],
      env: { ...process.env, PGSNAP_BACKUP_ID: session.backupId, PGSNAP_START_LSN: session.startLsn ?? '' },
    });
    child = running;
    // With --json, stdout carries one document: the command's own output goes to stderr.
    running.stdout?.pipe(process.stderr);
    exit = await new Promise((resolve) => {
      running.on('error', (error) => resolve({ code: null, signal: null, error }));
      running.on('exit', (code, signal) => resolve({ code, signal }));
    });
  }
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);

  const failure = interrupted
    ? `interrupted by ${interrupted}`
    : exit?.error
      ? `${command[0]} could not run: ${exit.error.message}`
      : exit?.code !== 0
        ? `${command.join(' ')} failed (${exit?.signal ? `killed by ${exit.signal}` : `exit code ${exit?.code}`})`
        : undefined;
  if (failure) {
    await abort(ctx, failure);
    return reportAborted(ctx, session.backupId, failure, interrupted);
  }
  const result = await end(ctx, {
    ...(values.output ? { output: values.output } : {}),
    archiveTimeoutMs: defaultArchiveTimeoutMs,
  });
  ctx.out.result(
    { ...result },
    table([
      ['backupId', result.backupId],
      ['startLsn', result.startLsn],
      ['stopLsn', result.stopLsn],
      ...result.artifacts.map((a): [string, unknown] => [
        a.name,
        `${a.path ?? '(not written)'} sha256 ${a.sha256}`,
      ]),
    ]),
  );
  return 0;
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
