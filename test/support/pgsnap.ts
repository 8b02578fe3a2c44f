/**
 * Runs the pgsnap CLI as an operator would, and reads its answer: the bundle (dist/pgsnap.mjs) on this
 * Node.js, or, when PGSNAP_TEST_BIN names one, that executable itself (the `executable` vitest project sets it
 * to the single executable dist/pgsnap-linux-x64, so the same test files run against what is shipped).
 */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';

export const pgsnapBin = resolve(import.meta.dirname, '../../dist/pgsnap.mjs');

/** The single executable under test, or undefined when the tests run the bundle. */
export const testedExecutable: string | undefined = process.env.PGSNAP_TEST_BIN
  ? resolve(import.meta.dirname, '../..', process.env.PGSNAP_TEST_BIN)
  : undefined;

/** The program and leading arguments that run pgsnap as the tests run it (see testedExecutable). */
export function pgsnapCommand(options: { bin?: string; node?: string } = {}): [string, string[]] {
  if (testedExecutable && options.bin === undefined && options.node === undefined)
    return [testedExecutable, []];
  return [options.node ?? process.execPath, [options.bin ?? pgsnapBin]];
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed, when it is one JSON document. */
  json: Record<string, unknown> | undefined;
}

export function pgsnap(
  args: string[],
  env: NodeJS.ProcessEnv,
  options: {
    timeoutMs?: number;
    bin?: string;
    node?: string;
    /** How the command is stopped at the timeout: SIGTERM lets one that cleans up after itself (demo) do so. */
    timeoutSignal?: NodeJS.Signals;
  } = {},
): Promise<CliResult> {
  return new Promise((resolveResult, reject) => {
    const [program, leading] = pgsnapCommand(options);
    const child = spawn(program, [...leading, ...args], {
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    const timer = setTimeout(
      () => child.kill(options.timeoutSignal ?? 'SIGKILL'),
      options.timeoutMs ?? 90_000,
    );
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      let json: Record<string, unknown> | undefined;
      try {
        json = JSON.parse(stdout) as Record<string, unknown>;
      } catch {
        json = undefined;
      }
      resolveResult({ code: code ?? -1, stdout, stderr, json });
    });
  });
}

/**
 * A backup of the cluster at `root` with `pgsnap run --provider copy --fast`
 * into the repository of `repoFlags`, its snapshots in `root`/snapshots; the
 * backupId. `env` reaches the cluster and names the state directory.
 */
export async function copyProviderBackup(
  root: string,
  env: NodeJS.ProcessEnv,
  repoFlags: string[],
): Promise<string> {
  const ran = await pgsnap(
    [
      'run',
      '--provider',
      'copy',
      '--snapshot-dir',
      join(root, 'snapshots'),
      '--fast',
      '--json',
      ...repoFlags,
    ],
    env,
  );
  if (ran.code !== 0) throw new Error(`pgsnap run exited ${ran.code}: ${ran.stderr}`);
  return ran.json!.backupId as string;
}
