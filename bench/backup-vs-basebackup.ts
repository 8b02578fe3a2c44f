/**
 * bench/backup-vs-basebackup: what a backup costs a busy server, pgsnap with
 * btrfs snapshots against pg_basebackup, on the same cluster at several sizes.
 *
 * For each size, one PostgreSQL 15 cluster with PGDATA (pg_wal inside) on a
 * btrfs volume on a loop device, loaded with `pgbench -i` (server-side
 * generation, logged tables), then under a pgbench load: three backups with
 * `pgsnap run --provider btrfs --fast`, then one with
 * `pg_basebackup -X stream -c fast` into a plain directory on the same disk.
 * For each backup: its wall time (process start to exit), TPS during it as a
 * share of the TPS in the 15 s just before it, the transactions lost against
 * that rate, the latency, and the WAL the server wrote in between
 * (pg_wal_lsn_diff). Goal (issue 6): pgsnap's time grows at most 1.2x from the
 * smallest to the largest size, and its TPS stays at or above 95 % of baseline.
 *
 * Both backups force an immediate checkpoint (`--fast`, `-c fast`), and on a
 * disk-bound load that checkpoint is most of what a short backup costs. So the
 * server log's checkpoint lines split each window into "in the checkpoint"
 * and "outside it", and a plain `CHECKPOINT` under the same load is measured
 * as a reference: what no backup with a fast start can go below.
 *
 * Choices that shape the figures:
 * - fsync is on while measuring (the test fixture turns it off, and so does the
 *   load, which is not measured): production runs with it,
 *   and it makes every commit wait for the disk, which is where a backup
 *   competes with the load (the checkpoint pg_backup_start forces, the btrfs
 *   transaction commit behind a snapshot, pg_basebackup reading every file and
 *   writing and syncing its copy).
 * - The load is unthrottled (`pgbench -c 2 -j 2`). At a fixed rate below
 *   capacity (`-R`) TPS stays at the rate by construction and a TPS goal is met
 *   whatever the backup costs; only latency would move. Unthrottled, every bit
 *   of disk or CPU the backup takes shows up as lost TPS. With fsync on the
 *   load is bound by commit flushes, not by the 2 cores, so the share measures
 *   interference rather than pgbench merely losing a core. Latency is printed
 *   beside it.
 * - TPS is counted from pgbench's per-transaction log (`-l`: completion time
 *   and latency of every transaction), not its `-P 1` lines: a pgsnap backup
 *   lasts two to four seconds here, and one-second progress lines cannot
 *   resolve a window that short, let alone the checkpoint inside it. pgbench is ended by terminating its sessions, which
 *   makes it close its logs; a log that does not cover the window is an error.
 * - Each backup runs under a pgbench of its own, started after a CHECKPOINT,
 *   so that every baseline starts from the same state, and with no other
 *   checkpoint due (max_wal_size, checkpoint_timeout). pgsnap's snapshots are
 *   deleted after each measurement (a kept snapshot makes later writes share
 *   extents, which would tax the next baseline), pg_basebackup's copy too.
 *
 * The machine is shared: other processes add noise to every figure.
 *
 * usage: npx tsx bench/backup-vs-basebackup.ts [sizes in GB, default 1,4,8]
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import type pg from 'pg';
import { BtrfsVolumes, btrfsUnavailable } from '../test/support/btrfs.ts';
import { Cluster, ownedDir, systemBin } from '../test/support/cluster.ts';
import { pgsnapBin } from '../test/support/pgsnap.ts';

const sizesGb = (process.argv[2] ?? '1,4,8').split(',').map(Number);
if (sizesGb.length === 0 || sizesGb.some((gb) => !(gb > 0))) {
  console.error('usage: npx tsx bench/backup-vs-basebackup.ts [sizes in GB, e.g. 1,4,8]');
  process.exit(2);
}

/** pgbench -i: about 15 MB per scale unit (accounts table and its primary key). */
const mbPerScale = 15;
const warmupMs = 5_000;
const baselineMs = 15_000;
/** Load after the backup, so that transactions in flight at its end are counted. */
const tailMs = 2_000;
const pgsnapRuns = 3;
const resultsFile = resolve(import.meta.dirname, 'results/backup-vs-basebackup.txt');
const settings = {
  shared_buffers: "'1GB'",
  maintenance_work_mem: "'512MB'",
  // No checkpoint but the backup's own inside a measurement (each starts with a CHECKPOINT).
  max_wal_size: "'4GB'",
  checkpoint_timeout: "'30min'",
  log_timezone: "'UTC'",
};

const began = performance.now();
const report: string[] = [];
function say(line = ''): void {
  console.log(line);
  report.push(line);
}
function progress(message: string): void {
  const s = Math.round((performance.now() - began) / 1000);
  console.error(
    `[${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}] ${message}`,
  );
}
const epochMs = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Cleanup in LIFO order, also after a failure or a signal; children are ended by their pid first.
const cleanups: Array<() => void> = [];
const children = new Set<ChildProcess>();
/** Runs the cleanup steps registered since `mark`, newest first. */
function cleanUp(mark = 0): void {
  while (cleanups.length > mark) {
    try {
      cleanups.pop()!();
    } catch (error) {
      console.error(`cleanup: ${(error as Error).message}`);
    }
  }
}
async function stopChildren(): Promise<void> {
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
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    progress(`${signal}: stopping what this benchmark started`);
    void stopChildren().finally(() => {
      cleanUp();
      writeResults(`interrupted by ${signal}`);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  });
}

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}
function start(command: string, args: string[], env: NodeJS.ProcessEnv): { exited: Promise<Exit> } {
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
async function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<Exit> {
  const exit = await start(command, args, env).exited;
  if (exit.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (exit ${exit.code}):\n${exit.stderr.slice(-2000)}`);
  }
  return exit;
}

interface Transaction {
  /** Completion, epoch ms. */
  at: number;
  latencyMs: number;
}
interface WindowStats {
  tps: number;
  meanMs: number;
  p95Ms: number;
}
interface Interval {
  from: number;
  to: number;
}
/** TPS and latency of the transactions completed inside the (disjoint) intervals. */
function statsOver(txns: Transaction[], intervals: Interval[]): WindowStats {
  const inside = txns
    .filter((t) => intervals.some((i) => t.at >= i.from && t.at < i.to))
    .map((t) => t.latencyMs);
  inside.sort((a, b) => a - b);
  const ms = intervals.reduce((sum, i) => sum + Math.max(0, i.to - i.from), 0);
  return {
    tps: inside.length / (ms / 1000),
    meanMs: inside.reduce((a, b) => a + b, 0) / Math.max(1, inside.length),
    p95Ms: inside[Math.floor(inside.length * 0.95)] ?? Number.NaN,
  };
}

/** The parts of `window` inside the `cuts` and outside them; the cuts are disjoint and in order. */
function split(window: Interval, cuts: Interval[]): { inside: Interval[]; outside: Interval[] } {
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

/** pgbench -l lines: client_id transaction_no time(us) script_no time_epoch time_us [...] */
function readTransactions(logDir: string, mustCover: number): Transaction[] {
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

interface Checkpoint extends Interval {
  buffers: number;
}
/**
 * Checkpoints that overlap [from, to), from the server log (log_checkpoints is on by default since 15;
 * the fixture's log_line_prefix starts with the time, in log_timezone, set to UTC here).
 */
function checkpointsIn(log: string, from: number, to: number): Checkpoint[] {
  const found: Checkpoint[] = [];
  let started: number | undefined;
  for (const m of log.matchAll(/^(\S+ \S+) UTC \[\d+\] LOG: {2}checkpoint (starting|complete): (.*)$/gm)) {
    const at = Date.parse(`${m[1]!.replace(' ', 'T')}Z`);
    if (m[2] === 'starting') started = at;
    else if (started !== undefined) {
      if (at >= from && started < to) {
        found.push({ from: started, to: at, buffers: Number(/wrote (\d+) buffers/.exec(m[3]!)?.[1]) });
      }
      started = undefined;
    }
  }
  return found;
}

interface Measured<T> {
  wallMs: number;
  base: WindowStats;
  during: WindowStats;
  walBytes: number;
  /** Checkpoints inside the backup (the one it forces, unless another was running), and the TPS beside them. */
  checkpoints: Checkpoint[];
  inCheckpoints: WindowStats;
  outsideCheckpoints: WindowStats;
  detail: T;
}

/**
 * One backup under its own pgbench run: CHECKPOINT, warm-up, baseline, the
 * backup, a tail; TPS and latency from the per-transaction log.
 */
async function underLoad<T>(
  cluster: Cluster,
  db: pg.Client,
  env: NodeJS.ProcessEnv,
  logDir: string,
  backup: () => Promise<T>,
): Promise<Measured<T>> {
  mkdirSync(logDir, { recursive: true });
  await db.query('CHECKPOINT');
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
  await sleep(warmupMs + baselineMs);
  assertRunning('before the backup');

  const lsn = async () =>
    (await db.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
  const before = await lsn();
  const from = epochMs();
  const detail = await backup();
  const to = epochMs();
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
  const checkpoints = checkpointsIn(cluster.log(), from, to);
  const parts = split({ from, to }, checkpoints);
  return {
    wallMs: to - from,
    base: statsOver(txns, [{ from: from - baselineMs, to: from }]),
    during: statsOver(txns, [{ from, to }]),
    walBytes: Number(wal.rows[0]!.bytes),
    checkpoints,
    inCheckpoints: statsOver(txns, parts.inside),
    outsideCheckpoints: statsOver(txns, parts.outside),
    detail,
  };
}

interface PgsnapDetail {
  snapshots: Array<{ snapshot: string }>;
  startCallMs: number;
  stopCallMs: number;
  archiveWaitMs: number;
  heldMs: number;
}
async function pgsnapBackup(env: NodeJS.ProcessEnv, output: string, label: string): Promise<PgsnapDetail> {
  const { stdout } = await run(
    process.execPath,
    [pgsnapBin, 'run', '--provider', 'btrfs', '--fast', '--label', label, '--output', output, '--json'],
    env,
  );
  const result = JSON.parse(stdout) as PgsnapDetail & { startedAt: string; stoppedAt: string };
  return {
    snapshots: result.snapshots,
    startCallMs: result.startCallMs,
    stopCallMs: result.stopCallMs,
    archiveWaitMs: result.archiveWaitMs,
    heldMs: Date.parse(result.stoppedAt) - Date.parse(result.startedAt),
  };
}

function deleteSnapshots(snapshots: Array<{ snapshot: string }>, mountPoint: string): void {
  for (const { snapshot } of snapshots) {
    execFileSync('btrfs', ['subvolume', 'delete', '-c', snapshot], { stdio: 'ignore' });
    rmSync(join(snapshot, '..'), { recursive: true, force: true });
  }
  // Wait for btrfs to free the deleted snapshots' extents, so that the cleaner does not run inside the next baseline.
  execFileSync('btrfs', ['subvolume', 'sync', mountPoint], { stdio: 'ignore' });
}

async function basebackup(env: NodeJS.ProcessEnv, target: string): Promise<{ copiedBytes: number }> {
  await run(join(systemBin, 'pg_basebackup'), ['-D', target, '-X', 'stream', '-c', 'fast'], env);
  const copiedBytes = Number(execFileSync('du', ['-sb', target], { encoding: 'utf8' }).split('\t')[0]);
  rmSync(target, { recursive: true, force: true });
  return { copiedBytes };
}

interface SizeResult {
  gb: number;
  scale: number;
  dbBytes: number;
  /** The reference: the immediate checkpoint both backups force, alone. */
  checkpoint: Measured<unknown>;
  pgsnap: Measured<PgsnapDetail>[];
  basebackup: Measured<{ copiedBytes: number }>;
}

/** Everything one size makes is removed before the next size is loaded, to free its disk. */
async function measureSize(root: string, gb: number): Promise<SizeResult> {
  const mark = cleanups.length;
  try {
    return await measureSizeIn(join(root, `${gb}gb`), gb);
  } finally {
    cleanUp(mark);
  }
}

async function measureSizeIn(dir: string, gb: number): Promise<SizeResult> {
  mkdirSync(dir, { mode: 0o711 });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const volumes = new BtrfsVolumes(join(dir, 'volumes'));
  mkdirSync(join(dir, 'volumes'));
  cleanups.push(() => volumes.destroy());
  // Data and its index, pg_wal up to max_wal_size and beyond, room for btrfs metadata; the image is sparse.
  const volume = volumes.create('pgdata', Math.ceil(gb * 1024 * 1.3) + 4096 + 2048);

  const scale = Math.max(1, Math.round((gb * 1024) / mbPerScale));
  const cluster = await Cluster.create({
    major: 15,
    root: ownedDir(join(dir, 'cluster')),
    initdbAt: { dataDir: volume.subvolume },
    // Loading is not measured: no need to sync or archive until it is done.
    settings: { ...settings, fsync: 'off', archive_command: "'/bin/true'" },
  });
  cleanups.push(() => cluster.destroy());
  const db = await cluster.client();
  cleanups.push(() => void db.end());
  const env = { ...cluster.env, PGSNAP_STATE_DIR: mkdtempSync(join(dir, 'state-')) };

  progress(`${gb} GB: loading pgbench scale ${scale}`);
  await run(join(systemBin, 'pgbench'), ['-i', '-I', 'dtGvp', '-s', String(scale)], env);
  cluster.configure({
    fsync: 'on',
    archive_command: `'test ! -f ${cluster.archiveDir}/%f && cp %p ${cluster.archiveDir}/%f'`,
  });
  await db.query('SELECT pg_reload_conf()');
  await db.query('CHECKPOINT');
  // What was written with fsync off is still dirty in the page cache: write it out now, not in a baseline.
  execFileSync('sync', ['-f', volume.mountPoint]);
  const size = await db.query<{ bytes: string }>("SELECT pg_database_size('postgres')::text AS bytes");
  const dbBytes = Number(size.rows[0]!.bytes);
  progress(`${gb} GB: loaded, database ${(dbBytes / 2 ** 30).toFixed(2)} GiB`);

  progress(`${gb} GB: CHECKPOINT alone under load (reference)`);
  const checkpoint = await underLoad(cluster, db, env, join(dir, 'pgbench-log'), () =>
    run(join(systemBin, 'psql'), ['-X', '-q', '-c', 'CHECKPOINT'], env),
  );
  const pgsnap: Measured<PgsnapDetail>[] = [];
  for (let i = 1; i <= pgsnapRuns; i++) {
    progress(`${gb} GB: pgsnap backup ${i}/${pgsnapRuns} under load`);
    const measured = await underLoad(cluster, db, env, join(dir, 'pgbench-log'), () =>
      pgsnapBackup(env, join(dir, `artifacts-${i}`), `bench ${gb} GB ${i}`),
    );
    deleteSnapshots(measured.detail.snapshots, volume.mountPoint);
    pgsnap.push(measured);
  }
  progress(`${gb} GB: pg_basebackup under load`);
  const base = await underLoad(cluster, db, env, join(dir, 'pgbench-log'), () =>
    basebackup(env, join(dir, 'basebackup')),
  );
  return { gb, scale, dbBytes, checkpoint, pgsnap, basebackup: base };
}

const median = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const share = (m: Measured<unknown>) => m.during.tps / m.base.tps;
/** Transactions the load did not complete during the backup, against its baseline rate; unlike the share, it grows with the length of the backup. */
const lost = (m: Measured<unknown>) => ((m.base.tps - m.during.tps) * m.wallMs) / 1000;
const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** Right-aligned columns of the given widths; the first one left-aligned. */
function columns(widths: number[], cells: string[]): string {
  return `  ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' ')}`;
}
const widths = [13, 8, 8, 7, 7, 7, 8, 7, 7, 8, 7, 7, 7, 7];

function printSize(r: SizeResult): void {
  say(`${r.gb} GB: database ${(r.dbBytes / 2 ** 30).toFixed(2)} GiB (pgbench scale ${r.scale})`);
  say(
    columns(widths, [
      'backup',
      'wall s',
      'TPS base',
      'during',
      'share',
      'lost tx',
      'lat base',
      'during',
      'p95',
      'WAL MB',
      'ckpt s',
      'buffers',
      'in ckpt',
      'outside',
    ]),
  );
  const row = (name: string, m: Measured<unknown>) =>
    say(
      columns(widths, [
        name,
        (m.wallMs / 1000).toFixed(2),
        m.base.tps.toFixed(0),
        m.during.tps.toFixed(0),
        pct(share(m)),
        lost(m).toFixed(0),
        m.base.meanMs.toFixed(1),
        m.during.meanMs.toFixed(1),
        m.during.p95Ms.toFixed(1),
        (m.walBytes / 2 ** 20).toFixed(1),
        (m.checkpoints.reduce((sum, c) => sum + c.to - c.from, 0) / 1000).toFixed(2),
        String(m.checkpoints.reduce((sum, c) => sum + c.buffers, 0)),
        m.checkpoints.length ? pct(m.inCheckpoints.tps / m.base.tps) : '-',
        pct(m.outsideCheckpoints.tps / m.base.tps),
      ]),
    );
  row('CHECKPOINT', r.checkpoint);
  r.pgsnap.forEach((m, i) => {
    row(`pgsnap ${i + 1}`, m);
  });
  row('pg_basebackup', r.basebackup);
  for (const [i, m] of r.pgsnap.entries()) {
    const d = m.detail;
    say(
      `  pgsnap ${i + 1}: holder up ${secs(d.heldMs)} (start to pg_backup_stop); pg_backup_start ${d.startCallMs} ms, ` +
        `pg_backup_stop ${d.stopCallMs} ms, archive wait ${d.archiveWaitMs} ms`,
    );
  }
  say(`  pg_basebackup copied ${(r.basebackup.detail.copiedBytes / 2 ** 30).toFixed(2)} GiB`);
  say();
}

function printSummary(results: SizeResult[]): void {
  say('Summary (pgsnap: median of its runs at each size)');
  const w = [7, 9, 10, 8, 7, 9, 2, 10, 10, 8, 7, 2, 11];
  say(
    columns(w, [
      'size',
      'pgsnap s',
      'TPS share',
      'lost tx',
      'WAL MB',
      'w/o ckpt',
      '|',
      'basebkp s',
      'TPS share',
      'lost tx',
      'WAL MB',
      '|',
      'CHECKPOINT',
    ]),
  );
  for (const r of results) {
    const p = r.pgsnap;
    const b = r.basebackup;
    say(
      columns(w, [
        `${r.gb} GB`,
        (median(p.map((m) => m.wallMs)) / 1000).toFixed(2),
        pct(median(p.map(share))),
        median(p.map(lost)).toFixed(0),
        (median(p.map((m) => m.walBytes)) / 2 ** 20).toFixed(1),
        pct(median(p.map((m) => m.outsideCheckpoints.tps / m.base.tps))),
        '|',
        (b.wallMs / 1000).toFixed(2),
        pct(share(b)),
        lost(b).toFixed(0),
        (b.walBytes / 2 ** 20).toFixed(1),
        '|',
        pct(share(r.checkpoint)),
      ]),
    );
  }
  say();
  const first = results[0]!;
  const last = results.at(-1)!;
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  const tools = [
    ['pgsnap', (r: SizeResult) => r.pgsnap],
    ['pg_basebackup', (r: SizeResult) => [r.basebackup]],
  ] as const;
  for (const [name, runs] of tools) {
    const label = name === 'pgsnap' ? '' : ' (for comparison)';
    if (results.length > 1) {
      const growth = median(runs(last).map((m) => m.wallMs)) / median(runs(first).map((m) => m.wallMs));
      say(
        `${name}${label}: backup time ${first.gb} GB -> ${last.gb} GB grows ${growth.toFixed(2)}x ` +
          `(goal <= 1.2x: ${verdict(growth <= 1.2)})`,
      );
    }
    const shares = results.map((r) => median(runs(r).map(share)));
    const lowest = Math.min(...shares);
    const lowestRun = Math.min(...results.flatMap((r) => runs(r).map(share)));
    say(
      `${name}${label}: TPS during backup, lowest size ${pct(lowest)} of baseline ` +
        `(goal >= 95 %: ${verdict(lowest >= 0.95)}); lowest single run ${pct(lowestRun)}`,
    );
  }
}

let finished = false;
function writeResults(status: string): void {
  if (finished) return;
  finished = true;
  mkdirSync(join(resultsFile, '..'), { recursive: true });
  const elapsed = ((performance.now() - began) / 60_000).toFixed(1);
  writeFileSync(resultsFile, `${[...report, '', `(${status}; ${elapsed} min in all)`].join('\n')}\n`);
}

async function main(): Promise<void> {
  const missing = btrfsUnavailable();
  if (missing) throw new Error(`cannot make btrfs volumes: ${missing}`);
  progress('building dist/pgsnap.mjs');
  execFileSync(process.execPath, [resolve(import.meta.dirname, '../agent/build.mjs')], {
    cwd: resolve(import.meta.dirname, '..'),
    stdio: 'inherit',
  });
  const root = mkdtempSync(join(tmpdir(), 'pgsnap-bench-bb-'));
  // The server user has to reach its socket, archive and volume below here.
  chmodSync(root, 0o711);
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));

  say(
    `backup-vs-basebackup: PostgreSQL 15, PGDATA on btrfs on a loop device; ${cpus().length} cores, ` +
      `${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM; ${new Date().toISOString()}`,
  );
  say(
    `load: pgbench -c 2 -j 2 unthrottled, fsync on; baseline = the ${baselineMs / 1000} s before each backup; ` +
      `pgsnap run --provider btrfs --fast x${pgsnapRuns}, pg_basebackup -X stream -c fast x1`,
  );
  say(
    'columns: wall time of the backup command; TPS in the baseline and during the backup, their ratio, and ' +
      'the transactions lost against the baseline rate; ' +
      'mean latency (ms) in both, p95 during; WAL from pg_current_wal_lsn() before to after (it includes ' +
      'the rest of the segment skipped by the switch at the end of every backup); checkpoints inside the backup ' +
      '(seconds, buffers written, from the server log) and the TPS share inside them and outside them. ' +
      'CHECKPOINT is a reference: psql -c CHECKPOINT alone, the immediate checkpoint both backups force',
  );
  say();
  const results: SizeResult[] = [];
  for (const gb of sizesGb) {
    const result = await measureSize(root, gb);
    results.push(result);
    printSize(result);
  }
  printSummary(results);
}

try {
  await main();
  writeResults('completed');
} catch (error) {
  // After a signal, its handler cleans up and records the interruption.
  if (!interrupted) {
    console.error(error);
    say(`FAILED: ${(error as Error).message}`);
    await stopChildren();
    writeResults('failed');
    process.exitCode = 1;
  }
} finally {
  if (!interrupted) cleanUp();
}
