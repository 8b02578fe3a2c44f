/** `pgsnap run -- CMD…`: begin, run any snapshot command, end; abort if it fails or is interrupted. */
import { spawn } from 'node:child_process';
import { UsageError } from '#domain/errors';
import { parse } from '../cli-args.ts';
import { createContext } from '../context.ts';
import { table } from '../output.ts';
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
  const options = parseBeginOptions({ ...values, label: values.label ?? 'pgsnap run' });
  const ctx = createContext(values);
  const session = await begin(ctx, options);
  ctx.out.progress(`backup ${session.backupId} started at ${session.startLsn}; running ${command.join(' ')}`);

  let interrupted: NodeJS.Signals | undefined;
  const child = spawn(command[0]!, command.slice(1), {
    stdio: ['inherit', ctx.out.json ? 'pipe' : 'inherit', 'inherit'],
    env: { ...process.env, PGSNAP_BACKUP_ID: session.backupId, PGSNAP_START_LSN: session.startLsn ?? '' },
  });
  // With --json, stdout carries one document: the command's own output goes to stderr.
  child.stdout?.pipe(process.stderr);
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = signal;
    child.kill(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>(
    (resolve) => {
      child.on('error', (error) => resolve({ code: null, signal: null, error }));
      child.on('exit', (code, signal) => resolve({ code, signal }));
    },
  );
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);

  const failure = interrupted
    ? `interrupted by ${interrupted}`
    : exit.error
      ? `${command[0]} could not run: ${exit.error.message}`
      : exit.code !== 0
        ? `${command.join(' ')} failed (${exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`})`
        : undefined;
  if (failure) {
    await abort(ctx, failure);
    const doc = { backupId: session.backupId, aborted: true, reason: failure };
    ctx.out.result(
      doc,
      table([
        ['aborted', session.backupId],
        ['reason', failure],
      ]),
    );
    return interrupted === 'SIGINT' ? 130 : interrupted === 'SIGTERM' ? 143 : 1;
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
