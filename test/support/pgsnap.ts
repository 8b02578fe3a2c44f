/** Runs the bundled pgsnap CLI as an operator would, and reads its answer. */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';

export const pgsnapBin = resolve(import.meta.dirname, '../../dist/pgsnap.mjs');

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
    const child = spawn(options.node ?? process.execPath, [options.bin ?? pgsnapBin, ...args], {
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
