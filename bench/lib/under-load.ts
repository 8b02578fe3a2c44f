/**
 * One action (a backup) measured under a pgbench load of its own, against a
 * baseline of the same load just before it, both under the same checkpoint
 * regime: the baseline starts just before a regular (timed) checkpoint.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { type Cluster, systemBin } from '../../test/support/cluster.ts';
import { type Checkpoint, checkpointsIn, regularCheckpointStart } from './checkpoints.ts';
import { epochMs, sleep } from './clock.ts';
import { pressure, stalled } from './machine.ts';
import { type Exit, start } from './processes.ts';
import { length, profileOf, readTransactions, split, statsOver, steps, type WindowStats } from './windows.ts';

export interface LoadWindows {
  /** At least this much load before the baseline may start. */
  warmupMs: number;
  /** How long the baseline lasts. */
  baselineMs: number;
  /** How long before the regular checkpoint's logged start the baseline begins, so that it holds all of it. */
  baselineLeadMs: number;
  /** Load after the action, so that transactions in flight at its end are counted. */
  tailMs: number;
}

export interface Measured<T> {
  wallMs: number;
  base: WindowStats;
  /** Lowest and highest TPS over 5 s steps of the baseline, and of the backup when it lasts 10 s or more. */
  baseSteps: { min: number; max: number };
  duringSteps: { min: number; max: number } | undefined;
  /** Share of the window in which some task on the machine waited for a CPU or for I/O: our load's and everyone else's. */
  baseStall: { cpu: number; io: number } | undefined;
  duringStall: { cpu: number; io: number } | undefined;
  /** The baseline's share of time inside checkpoints, and the checkpoints that started and ended inside it. */
  baseInCheckpoint: number;
  baseCompleteCheckpoints: Checkpoint[];
  during: WindowStats;
  walBytes: number;
  /** Checkpoints that overlap the backup (a running regular one, then the one it requests), and the TPS beside them. */
  checkpoints: Checkpoint[];
  inCheckpoints: WindowStats;
  outsideCheckpoints: WindowStats;
  /** How far into a running checkpoint the backup started (ms), if one was running. */
  startedIntoCheckpointMs: number | undefined;
  /** TPS in each second of the backup, and where checkpoints started (|) and ended (!) in it. */
  profile: string;
  detail: T;
}

/**
 * One backup under its own pgbench run: CHECKPOINT, load until a regular
 * checkpoint starts, a baseline of `baselineMs` from just before it, the backup, a tail; TPS
 * and latency from the per-transaction log.
 */
export async function underLoad<T>(
  cluster: Cluster,
  db: pg.Client,
  env: NodeJS.ProcessEnv,
  logDir: string,
  backup: () => Promise<T>,
  { warmupMs, baselineMs, baselineLeadMs, tailMs }: LoadWindows,
): Promise<Measured<T>> {
  mkdirSync(logDir, { recursive: true });
  await db.query('CHECKPOINT');
  const loadFrom = epochMs();
  const bench = start(
    join(systemBin, 'pgbench'),
    ['-c', '2', '-j', '2', '-T', '86400', '-l', `--log-prefix=${join(logDir, 'txn')}`],
    env,
  );
  const pgbench: { exit?: Exit } = {};
  void bench.exited.then((exit) => {
    pgbench.exit = exit;
  });
  const assertRunning = (when: string) => {
    if (pgbench.exit) throw new Error(`pgbench stopped ${when}:\n${pgbench.exit.stderr.slice(-2000)}`);
  };
  const regular = await regularCheckpointStart(cluster, loadFrom + warmupMs, 45_000);
  // Read within 200 ms of the checkpoint's start, so about the start of the baseline.
  const pressureAtBase = pressure();
  await sleep(Math.max(0, regular - baselineLeadMs + baselineMs - epochMs()));
  assertRunning('before the backup');

  const lsn = async () =>
    (await db.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
  const before = await lsn();
  const pressureAtFrom = pressure();
  const from = epochMs();
  const detail = await backup();
  const to = epochMs();
  const pressureAtTo = pressure();
  const after = await lsn();
  const wal = await db.query<{ bytes: string }>('SELECT pg_wal_lsn_diff($1, $2)::bigint::text AS bytes', [
    after,
    before,
  ]);
  await sleep(tailMs);

  assertRunning('during the backup');
  // Losing their sessions makes pgbench's clients abort and pgbench close its logs (exit code 2).
  await db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgbench'");
  await bench.exited;
  const txns = readTransactions(logDir, to);
  rmSync(logDir, { recursive: true, force: true });
  const log = cluster.log();
  const baseWindow = { from: from - baselineMs, to: from };
  const baseCheckpoints = checkpointsIn(log, baseWindow.from, baseWindow.to);
  const checkpoints = checkpointsIn(log, from, to);
  const parts = split({ from, to }, checkpoints);
  const running = checkpoints.find((c) => c.from < from);
  return {
    wallMs: to - from,
    base: statsOver(txns, [baseWindow]),
    baseSteps: steps(txns, baseWindow),
    duringSteps: to - from >= 10_000 ? steps(txns, { from, to }) : undefined,
    baseStall: stalled(pressureAtBase, pressureAtFrom, from - (regular - baselineLeadMs)),
    duringStall: stalled(pressureAtFrom, pressureAtTo, to - from),
    baseInCheckpoint: length(split(baseWindow, baseCheckpoints).inside) / baselineMs,
    baseCompleteCheckpoints: baseCheckpoints.filter(
      (c) => c.from >= baseWindow.from && c.to <= baseWindow.to,
    ),
    during: statsOver(txns, [{ from, to }]),
    walBytes: Number(wal.rows[0]!.bytes),
    checkpoints,
    inCheckpoints: statsOver(txns, parts.inside),
    outsideCheckpoints: statsOver(txns, parts.outside),
    startedIntoCheckpointMs: running ? from - running.from : undefined,
    profile: profileOf(txns, { from, to }, checkpoints, statsOver(txns, [baseWindow]).tps),
    detail,
  };
}
