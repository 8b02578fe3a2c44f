/**
 * TPS and latency over windows of time, from pgbench's per-transaction log
 * (`-l`): one-second progress lines cannot resolve a backup of a few seconds,
 * let alone the checkpoints inside it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Transaction {
  /** Completion, epoch ms. */
  at: number;
  latencyMs: number;
}
export interface WindowStats {
  tps: number;
  meanMs: number;
  p95Ms: number;
  /** Length of the intervals counted. */
  ms: number;
}
export interface Interval {
  from: number;
  to: number;
}
/** TPS and latency of the transactions completed inside the (disjoint) intervals. */
export function statsOver(txns: Transaction[], intervals: Interval[]): WindowStats {
  const inside = txns
    .filter((t) => intervals.some((i) => t.at >= i.from && t.at < i.to))
    .map((t) => t.latencyMs);
  inside.sort((a, b) => a - b);
  const ms = intervals.reduce((sum, i) => sum + Math.max(0, i.to - i.from), 0);
  return {
    tps: inside.length / (ms / 1000),
    meanMs: inside.reduce((a, b) => a + b, 0) / Math.max(1, inside.length),
    p95Ms: inside[Math.floor(inside.length * 0.95)] ?? Number.NaN,
    ms,
  };
}

/** The parts of `window` inside the `cuts` and outside them; the cuts are disjoint and in order. */
export function split(window: Interval, cuts: Interval[]): { inside: Interval[]; outside: Interval[] } {
  const inside = cuts
    .map((c) => ({ from: Math.max(window.from, c.from), to: Math.min(window.to, c.to) }))
    .filter((c) => c.to > c.from);
  const outside: Interval[] = [];
  let at = window.from;
  for (const c of inside) {
    if (c.from > at) outside.push({ from: at, to: c.from });
    at = c.to;
  }
  if (window.to > at) outside.push({ from: at, to: window.to });
  return { inside, outside };
}
export const length = (intervals: Interval[]) => intervals.reduce((sum, i) => sum + i.to - i.from, 0);

/** pgbench -l lines: client_id transaction_no time(us) script_no time_epoch time_us [...] */
export function readTransactions(logDir: string, mustCover: number): Transaction[] {
  const txns: Transaction[] = [];
  for (const file of readdirSync(logDir)) {
    let last = 0;
    for (const line of readFileSync(join(logDir, file), 'utf8').split('\n')) {
      const f = line.split(' ');
      const latency = Number(f[2]);
      if (f.length < 6 || !Number.isFinite(latency)) continue;
      last = Number(f[4]) * 1000 + Number(f[5]) / 1000;
      txns.push({ at: last, latencyMs: latency / 1000 });
    }
    if (last < mustCover) {
      throw new Error(`pgbench log ${file} ends before the backup window does; is pgbench still running?`);
    }
  }
  return txns;
}

/** TPS of each second of `window` as a share of `base` (in tens of percent, 0-9, + above 100 %), | where a checkpoint starts, ! where one ends. */
export function profileOf(
  txns: Transaction[],
  window: Interval,
  checkpoints: Array<Interval & { running?: boolean }>,
  base: number,
): string {
  let line = '';
  for (let at = window.from; at + 1000 <= window.to; at += 1000) {
    const marks = checkpoints
      .map((c) =>
        c.from >= at && c.from < at + 1000 ? '|' : !c.running && c.to >= at && c.to < at + 1000 ? '!' : '',
      )
      .join('');
    const share = statsOver(txns, [{ from: at, to: at + 1000 }]).tps / base;
    line += marks + (share >= 1 ? '+' : String(Math.floor(share * 10)));
  }
  return line;
}

/** The lowest and highest TPS over the whole 5 s steps of a window. */
export function steps(txns: Transaction[], window: Interval, stepMs = 5_000): { min: number; max: number } {
  const rates: number[] = [];
  for (let at = window.from; at + stepMs <= window.to; at += stepMs) {
    rates.push(statsOver(txns, [{ from: at, to: at + stepMs }]).tps);
  }
  return { min: Math.min(...rates), max: Math.max(...rates) };
}
