/**
 * What every phase of the demo shares: the signal that stops every command
 * once interrupted, how the phases speak, and everything made so far, which
 * the cleanup stops and removes.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { promisify } from 'node:util';
import type pg from 'pg';
import type { Output } from '../../agent/host/output.ts';
import type { Cluster } from '../../agent/restore/cluster.ts';
import type { BtrfsVolumes } from '../btrfs-volumes.ts';
import type { Writer } from '../writer.ts';

const execFileAsync = promisify(execFile);
/** Aborts every command still running when the demo is interrupted. */
export const running = new AbortController();
export const run = (file: string, args: string[]) => execFileAsync(file, args, { signal: running.signal });

/** The host as the local EC2 presents it. */
export const localInstanceId = 'i-0000000000000000a';

/** What every phase of the demo speaks through, and what it has made so far. */
export interface Demo {
  out: Output;
  started: number;
  work: string;
  made: Made;
  /** The next numbered step, also once interrupted (the state machine's steps, which its abort signal stops). */
  say(message: string): void;
  /** The next numbered step; refused once interrupted. */
  progress(message: string): void;
  /** A line under the current step. */
  detail(message: string): void;
}

/**
 * Everything the demo started or made, stopped and removed by `cleanUp`:
 * the load first, then the commands still running, the drills' clones, the
 * servers, the volumes, and the work directory (unless --keep).
 */
export class Made {
  readonly clusters: Cluster[] = [];
  readonly children: ChildProcess[] = [];
  readonly hostCommands = new Set<Promise<unknown>>();
  readonly discards: Array<() => Promise<void>> = [];
  volumes: BtrfsVolumes | undefined;
  writer: Writer | undefined;
  writerClient: pg.Client | undefined;

  constructor(
    private readonly work: string,
    private readonly keep: boolean,
  ) {}

  async cleanUp(): Promise<void> {
    // The writer first: its queries would fail, unhandled, once the server is gone.
    await this.writer?.stop().catch(() => {});
    await this.writerClient?.end().catch(() => {});
    running.abort();
    for (const child of this.children) child.kill('SIGTERM');
    // The agent commands the state machine started end with the abort above; their files are about to go.
    await Promise.race([
      Promise.allSettled([...this.hostCommands]),
      new Promise((resolve) => setTimeout(resolve, 15_000).unref()),
    ]);
    for (const discard of this.discards.reverse()) await discard().catch(() => {});
    for (const cluster of this.clusters.reverse()) cluster.stopSync('immediate');
    this.volumes?.destroy();
    if (!this.keep) rmSync(this.work, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
}
