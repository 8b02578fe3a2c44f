/** The backups a benchmark takes and compares: pgsnap with btrfs snapshots, and pg_basebackup. */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { systemBin } from '../../test/support/cluster.ts';
import { pgsnapBin } from '../../test/support/pgsnap.ts';
import { run } from './processes.ts';

/** What a backup reports beside its time: pgsnap's own timings and snapshots, or the size of a copy. */
export interface Detail {
  pgsnap?: {
    snapshots: Array<{ snapshot: string }>;
    startCallMs: number;
    stopCallMs: number;
    archiveWaitMs: number;
    heldMs: number;
  };
  copiedBytes?: number;
}
/** `pgsnap run --provider btrfs [--fast]`, its artifacts into `output`. */
export async function pgsnapBackup(
  env: NodeJS.ProcessEnv,
  output: string,
  label: string,
  fast: boolean,
): Promise<Detail> {
  const { stdout } = await run(
    process.execPath,
    [
      pgsnapBin,
      'run',
      '--provider',
      'btrfs',
      ...(fast ? ['--fast'] : []),
      '--label',
      label,
      '--output',
      output,
      '--json',
    ],
    env,
  );
  const result = JSON.parse(stdout) as {
    snapshots: Array<{ snapshot: string }>;
    startCallMs: number;
    stopCallMs: number;
    archiveWaitMs: number;
    startedAt: string;
    stoppedAt: string;
  };
  return {
    pgsnap: {
      snapshots: result.snapshots,
      startCallMs: result.startCallMs,
      stopCallMs: result.stopCallMs,
      archiveWaitMs: result.archiveWaitMs,
      heldMs: Date.parse(result.stoppedAt) - Date.parse(result.startedAt),
    },
  };
}

/** Deletes the btrfs snapshots of a pgsnap backup and waits until btrfs has freed them. */
export function deleteSnapshots(snapshots: Array<{ snapshot: string }>, mountPoint: string): void {
  for (const { snapshot } of snapshots) {
    execFileSync('btrfs', ['subvolume', 'delete', '-c', snapshot], { stdio: 'ignore' });
    rmSync(join(snapshot, '..'), { recursive: true, force: true });
  }
  // Wait for btrfs to free the deleted snapshots' extents, so that the cleaner does not run inside the next baseline.
  execFileSync('btrfs', ['subvolume', 'sync', mountPoint], { stdio: 'ignore' });
}

/** `pg_basebackup -X stream -c <checkpoint>` into `target`, which is removed once its size is read. */
export async function basebackup(
  env: NodeJS.ProcessEnv,
  target: string,
  checkpoint: 'spread' | 'fast',
): Promise<Detail> {
  await run(join(systemBin, 'pg_basebackup'), ['-D', target, '-X', 'stream', '-c', checkpoint], env);
  const copiedBytes = Number(execFileSync('du', ['-sb', target], { encoding: 'utf8' }).split('\t')[0]);
  rmSync(target, { recursive: true, force: true });
  return { copiedBytes };
}
