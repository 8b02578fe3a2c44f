/**
 * Progress of long work on a terminal: the phase under way with a spinner and
 * its elapsed time (ora), each finished phase left as a line with how long it
 * took. Not on a terminal (a log, a pipe, systemd, SSM Run Command, CI), the
 * plain `pgsnap: message` lines of output.ts, unchanged.
 */
import ora, { type Ora } from 'ora';
import { formatDuration } from '#domain/backup/input';
import type { Output } from '../host/output.ts';

export interface ProgressOutput extends Output {
  /** Ends the phase under way; call it in a finally, or the spinner keeps the process alive. */
  stop(): void;
}

/** Whether `stream` is a terminal that can redraw a line. */
export function isTerminal(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && env.TERM !== 'dumb' && env.CI === undefined;
}

export function terminalProgress(
  out: Output,
  stream: NodeJS.WriteStream = process.stderr,
  now: () => number = Date.now,
): ProgressOutput {
  let spinner: Ora | undefined;
  let phase: { message: string; since: number } | undefined;
  let ticker: NodeJS.Timeout | undefined;
  const elapsed = () => formatDuration(now() - phase!.since);
  const finish = () => {
    clearInterval(ticker);
    if (spinner && phase) spinner.succeed(`${phase.message} (${elapsed()})`);
    spinner = undefined;
    phase = undefined;
  };
  return {
    json: out.json,
    progress(message) {
      finish();
      phase = { message, since: now() };
      spinner = ora({ text: message, stream, discardStdin: false, isEnabled: true }).start();
      // The elapsed time of what is being waited for, once a second.
      ticker = setInterval(() => {
        if (spinner && phase) spinner.text = `${phase.message} · ${elapsed()}`;
      }, 1_000);
      ticker.unref();
    },
    result(document, lines) {
      finish();
      out.result(document, lines);
    },
    stop() {
      if (spinner && phase) spinner.stopAndPersist({ symbol: '·', text: `${phase.message} (${elapsed()})` });
      clearInterval(ticker);
      spinner = undefined;
      phase = undefined;
    },
  };
}

/** `out` with terminal progress where stderr is a terminal; as it is, with a stop that does nothing, elsewhere. */
export function progressOutput(out: Output): ProgressOutput {
  return isTerminal(process.stderr) ? terminalProgress(out) : { ...out, stop() {} };
}
