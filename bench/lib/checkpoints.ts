/** The server's checkpoints, from its log: when each ran, what kind, what it wrote. */
import type { Cluster } from '../../test/support/cluster.ts';
import { epochMs, sleep } from './clock.ts';
import type { Interval } from './windows.ts';

export interface Checkpoint extends Interval {
  /** Its flags as the log gives them: `time` for a regular one, `force wait` for a spread request, `immediate force wait`… */
  kind: string;
  /** Buffers written and the sync phase's length, from its `complete` line. */
  buffers: number;
  syncMs: number;
  /** Not complete when the log was read: it runs to the end of the window at least. */
  running: boolean;
}

/**
 * The server log's checkpoint lines (log_checkpoints is on by default since 15;
 * the fixture's log_line_prefix starts with the time, in log_timezone, which has to be UTC).
 */
export function checkpointLines(log: string): Array<{ at: number; event: string; rest: string }> {
  return [...log.matchAll(/^(\S+ \S+) UTC \[\d+\] LOG: {2}checkpoint (starting|complete): (.*)$/gm)].map(
    (m) => ({ at: Date.parse(`${m[1]!.replace(' ', 'T')}Z`), event: m[2]!, rest: m[3]!.trim() }),
  );
}

/** Checkpoints that overlap [from, to), `to` in the past; one that has not completed yet counts up to `to`. */
export function checkpointsIn(log: string, from: number, to: number): Checkpoint[] {
  const found: Checkpoint[] = [];
  let started: { at: number; kind: string } | undefined;
  for (const line of checkpointLines(log)) {
    if (line.event === 'starting') started = { at: line.at, kind: line.rest };
    else if (started !== undefined) {
      if (line.at >= from && started.at < to) {
        found.push({
          from: started.at,
          to: line.at,
          kind: started.kind,
          buffers: Number(/wrote (\d+) buffers/.exec(line.rest)?.[1]),
          syncMs: Number(/sync=([\d.]+) s/.exec(line.rest)?.[1]) * 1000,
          running: false,
        });
      }
      started = undefined;
    }
  }
  if (started !== undefined && started.at < to) {
    found.push({ from: started.at, to, kind: started.kind, buffers: 0, syncMs: 0, running: true });
  }
  return found;
}

/** Waits for a regular (timed) checkpoint to start at or after `after`; returns when it started. */
export async function regularCheckpointStart(
  cluster: Cluster,
  after: number,
  timeoutMs: number,
): Promise<number> {
  const deadline = epochMs() + timeoutMs;
  for (;;) {
    const line = checkpointLines(cluster.log()).find(
      (l) => l.event === 'starting' && l.rest === 'time' && l.at >= after,
    );
    if (line) return line.at;
    if (epochMs() > deadline) {
      throw new Error(
        `no regular checkpoint started within ${timeoutMs / 1000} s (checkpoint_timeout = 30s)`,
      );
    }
    await sleep(200);
  }
}
