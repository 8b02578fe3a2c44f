/**
 * Processes a test signals while they run (`pgsnap run` interrupted, begin's
 * process group killed), and the waits that go with them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { onTestFinished } from 'vitest';

export interface Watched {
  child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout or stderr contains `text`; rejects if the process exits first. */
  waitFor(text: string, timeoutMs?: number): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Spawns a process whose output the test reads as it comes. With `group`, it
 * leads a process group of its own so that the test can signal the group; a
 * group still alive when the test finishes is killed.
 */
export function spawnWatched(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  options: { group?: boolean } = {},
): Watched {
  const child = spawn(command, args, {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.group ?? false,
  });
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const waiter of waiters) waiter();
  };
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    notify();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    notify();
  });
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      done = true;
      resolve({ code, signal });
      notify();
    });
  });
  onTestFinished(() => {
    if (done || child.pid === undefined) return;
    try {
      process.kill(options.group ? -child.pid : child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    waitFor(text, timeoutMs = 60_000) {
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(`no ${JSON.stringify(text)} within ${timeoutMs} ms; output:\n${stdout}\n${stderr}`),
          );
        }, timeoutMs);
        const check = () => {
          if (stdout.includes(text) || stderr.includes(text)) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve();
          } else if (done) {
            clearTimeout(timer);
            waiters.delete(check);
            reject(
              new Error(`exited before printing ${JSON.stringify(text)}; output:\n${stdout}\n${stderr}`),
            );
          }
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** True while `pid` runs; a zombie (killed, not yet reaped by its parent) counts as gone. */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
