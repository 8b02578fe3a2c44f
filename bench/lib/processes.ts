/**
 * The child processes and cleanup steps of a long benchmark: children are
 * tracked so that a failure or a signal ends them by their pid, and cleanup
 * steps run in LIFO order, also after a failure or a signal.
 */
import { type ChildProcess, spawn } from 'node:child_process';

const cleanups: Array<() => void> = [];
const children = new Set<ChildProcess>();
let interrupted = false;

/** Registers a cleanup step; they run newest first. */
export function onCleanup(step: () => void): void {
  cleanups.push(step);
}

/** Where cleanUp(mark) stops: the steps registered from now on. */
export function cleanupMark(): number {
  return cleanups.length;
}

/** Runs the cleanup steps registered since `mark`, newest first. */
export function cleanUp(mark = 0): void {
  while (cleanups.length > mark) {
    try {
      cleanups.pop()!();
    } catch (error) {
      console.error(`cleanup: ${(error as Error).message}`);
    }
  }
}

/** SIGTERM to every child still running, SIGKILL after 15 s; resolves once all have exited. */
export async function stopChildren(): Promise<void> {
  const exits = [...children].map(
    (child) => new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('close', () => r()))),
  );
  for (const child of children) child.kill('SIGTERM');
  const killer = setTimeout(() => {
    for (const child of children) child.kill('SIGKILL');
  }, 15_000);
  await Promise.all(exits);
  clearTimeout(killer);
}

/**
 * On SIGINT or SIGTERM: `announce`, end the children, run every cleanup step,
 * `record` the interruption, and exit 130 or 143.
 */
export function cleanUpOnSignals(
  announce: (signal: NodeJS.Signals) => void,
  record: (signal: NodeJS.Signals) => void,
): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      interrupted = true;
      announce(signal);
      void stopChildren().finally(() => {
        cleanUp();
        record(signal);
        process.exit(signal === 'SIGINT' ? 130 : 143);
      });
    });
  }
}

/** Whether a signal came: its handler then cleans up and records it. */
export function wasInterrupted(): boolean {
  return interrupted;
}

export interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts a tracked child with only PATH and `env` in its environment; `exited` resolves with what it printed. */
export function start(command: string, args: string[], env: NodeJS.ProcessEnv): { exited: Promise<Exit> } {
  const child = spawn(command, args, {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
  });
  child.stderr.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  const exited = new Promise<Exit>((r, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      children.delete(child);
      r({ code, stdout, stderr });
    });
  });
  return { exited };
}

/** start, and throw with the end of its stderr unless it exits 0. */
export async function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<Exit> {
  const exit = await start(command, args, env).exited;
  if (exit.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (exit ${exit.code}):\n${exit.stderr.slice(-2000)}`);
  }
  return exit;
}
