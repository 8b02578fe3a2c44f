/**
 * bench/backup-vs-basebackup: what a backup costs a busy server, pgsnap with
 * btrfs snapshots against pg_basebackup, on the same cluster at several sizes,
 * each with a spread and with an immediate start checkpoint.
 *
 * For each size, one PostgreSQL 15 cluster with PGDATA (pg_wal inside) on a
 * btrfs volume on a loop device, loaded with `pgbench -i` (server-side
 * generation, logged tables), then, each under a pgbench load of its own:
 * - `pgsnap run --provider btrfs`: pgsnap's default mode. pg_backup_start(fast
 *   => false) requests a spread checkpoint, throttled like the regular ones
 *   (checkpoint_completion_target x checkpoint_timeout): what an operator
 *   runs to back up without slowing the database. The goals are this mode's.
 * - `pgsnap run --provider btrfs --fast`: pg_backup_start(fast => true), an
 *   immediate checkpoint, at full speed.
 * - `pg_basebackup -X stream -c spread` (its default) and `-c fast`, into a
 *   plain directory on the same disk: like for like with both pgsnap modes.
 * - with `--with-checkpoint`, `CHECKPOINT` alone, as a reference: the immediate
 *   checkpoint every fast start forces, and what no fast start can go below
 *   (left out by default to keep the run to about half an hour).
 * For each backup: its wall time (process start to exit), TPS during it as a
 * share of the TPS in the baseline before it, the transactions lost against
 * that rate, the latency, and the WAL the server wrote in between
 * (pg_wal_lsn_diff). Goal (issue 6): pgsnap's time grows at most 1.2x from the
 * smallest to the largest size, and its TPS stays at or above 95 % of
 * baseline at every size.
 *
 * The checkpoint regime is the same in the baseline as during the backup:
 * - checkpoint_timeout = 30s, the minimum (with the default 5 min a spread
 *   checkpoint lasts 4.5 min and so would every spread backup), and
 *   checkpoint_completion_target at its default 0.9: a regular checkpoint is
 *   spread over about 27 s of every 30 s, the same 90 % of the time as with
 *   any timeout, but on a shorter cycle (more full-page writes in the WAL
 *   than with a production timeout). max_wal_size = 4GB, so that none is
 *   triggered by WAL. (The load of the cluster runs with 30min, unmeasured.)
 * - Each pgbench run starts right after a CHECKPOINT (every run starts from the
 *   same state, and the timer from a known point); the first regular (timed)
 *   checkpoint starts about 30 s later, with 30 s of the load's dirty pages to
 *   write, as in a steady state. The baseline is the 45 s from 1 s before its
 *   logged start: one whole regular checkpoint, the pause after it, and the
 *   first half of the next one. The backup then starts about 14 s into that
 *   one, mid-cycle, about the average phase of a backup started at a random
 *   time: a spread start waits for the running checkpoint to end and then for
 *   one of its own, spread over another 27 s (so a spread backup lasts about
 *   40 s whatever the size); a fast start makes the running checkpoint finish
 *   at full speed and then runs an immediate one. The baseline's share of time
 *   inside checkpoints and its complete checkpoints, from the server log, are
 *   printed beside it.
 *
 * Choices that shape the figures:
 * - fsync is on while measuring (the test fixture turns it off, and so does the
 *   load, which is not measured): production runs with it,
 *   and it makes every commit wait for the disk, which is where a backup
 *   competes with the load (the checkpoint pg_backup_start requests, the btrfs
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
 *   and latency of every transaction), not its `-P 1` lines: a fast pgsnap
 *   backup lasts a few seconds, and one-second progress lines cannot resolve a
 *   window that short, let alone the checkpoints inside it. The server log's
 *   checkpoint lines split each window into "in a checkpoint" and "outside".
 *   pgbench is ended by terminating its sessions, which makes it close its
 *   logs; a log that does not cover the window is an error.
 * - pgsnap's snapshots are deleted after each measurement (a kept snapshot
 *   makes later writes share extents, which would tax the next baseline),
 *   pg_basebackup's copy too.
 * - One run of each mode per size (the whole run has to fit in about half an
 *   hour); the code takes the median when `runs` is raised.
 *
 * The machine is shared: other processes add noise to every figure. So each
 * row also gets the lowest and highest TPS over 5 s steps of its windows, and
 * the machine's CPU and I/O pressure (PSI) in both: a share is only as good as
 * the calm around it.
 *
 * With `--control[=N]` (3 by default), only pgsnap's default mode is measured,
 * N times, each run followed by the same backup start and stop from psql
 * (PostgreSQL's own part: its checkpoint, no pgsnap process, no snapshot) and
 * by a control: the same window (same phase, same length) with nothing run in
 * it, so that the noise and the checkpoint phase alone can be told from the
 * backup's cost, and PostgreSQL's part of it from pgsnap's. A run with either
 * option is recorded in a file of its own.
 *
 * The load runs in a database of its own (`bench`), and the backups connect
 * to `postgres`, as an application and a backup tool do in production (and
 * as the README asks of pgsnap's PGDATABASE). pg_backup_start runs in a
 * statement, whose snapshot keeps its backend's xmin for the whole wait for
 * the checkpoint (about 40 s here, minutes with a production
 * checkpoint_timeout); PostgreSQL holds back pruning and vacuum only for the
 * tables of the database that backend is connected to, so in the load's own
 * database every row pgbench updates in that time stays, dead, in its HOT
 * chain (pgbench_branches has one row per scale unit, updated by every
 * transaction), and TPS sinks the longer the wait lasts. `--same-database`
 * runs the load in `postgres` too, to measure that.
 *
 * usage: npx tsx bench/backup-vs-basebackup.ts [sizes in GB, default 1,4,8] [--with-checkpoint | --control[=N]] [--same-database]
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { btrfsUnavailable } from '../test/support/btrfs.ts';
import { systemBin } from '../test/support/cluster.ts';
import { basebackup, type Detail, deleteSnapshots, pgsnapBackup } from './lib/backups.ts';
import { clusterOnBtrfs } from './lib/btrfs-cluster.ts';
import { sleep } from './lib/clock.ts';
import {
  cleanUp,
  cleanUpOnSignals,
  cleanupMark,
  onCleanup,
  run,
  stopChildren,
  wasInterrupted,
} from './lib/processes.ts';
import { Report, resultsPath } from './lib/report.ts';
import { median } from './lib/stats.ts';
import { columns, pct, secs } from './lib/table.ts';
import { type LoadWindows, type Measured, underLoad } from './lib/under-load.ts';

const args = process.argv.slice(2);
const flags = args.filter((a) => a.startsWith('--'));
const withCheckpoint = flags.includes('--with-checkpoint');
const sameDatabase = flags.includes('--same-database');
/** Where pgbench runs; the backups connect to `postgres`. */
const loadDatabase = sameDatabase ? 'postgres' : 'bench';
const controlFlag = flags.find((f) => /^--control(=\d+)?$/.test(f));
const controlRounds = controlFlag ? Number(controlFlag.split('=')[1] ?? 3) : 0;
const sizesGb = (args.find((a) => !a.startsWith('--')) ?? '1,4,8').split(',').map(Number);
if (
  sizesGb.length === 0 ||
  sizesGb.some((gb) => !(gb > 0)) ||
  flags.some((f) => f !== '--with-checkpoint' && f !== '--same-database' && f !== controlFlag) ||
  (controlFlag !== undefined && (withCheckpoint || !(controlRounds >= 1)))
) {
  console.error(
    'usage: npx tsx bench/backup-vs-basebackup.ts [sizes in GB, e.g. 1,4,8] [--with-checkpoint | --control[=N]] ' +
      '[--same-database]',
  );
  process.exit(2);
}

/** pgbench -i: about 15 MB per scale unit (accounts table and its primary key). */
const mbPerScale = 15;
/**
 * The baseline: from just before the start of a regular checkpoint, one whole cycle of 30 s and half of the
 * next; at least 5 s of load before it, 2 s after the backup.
 */
const loadWindows: LoadWindows = {
  warmupMs: 5_000,
  baselineMs: 45_000,
  baselineLeadMs: 1_000,
  tailMs: 2_000,
};
/** A run with other rows or other sizes is recorded beside the default one, not over it. */
const resultsFile = resultsPath(
  `backup-vs-basebackup${controlRounds ? '-control' : withCheckpoint ? '-with-checkpoint' : ''}` +
    `${sizesGb.join(',') === '1,4,8' ? '' : `-${sizesGb.join('-')}gb`}${sameDatabase ? '-same-database' : ''}.txt`,
);
const settings = {
  shared_buffers: "'1GB'",
  maintenance_work_mem: "'512MB'",
  // No checkpoint triggered by WAL: only the timed ones and those the backups request.
  max_wal_size: "'4GB'",
  log_timezone: "'UTC'",
};
/** While measuring; checkpoint_completion_target is left at its default (0.9), and printed as the server has it. */
const measuredSettings = {
  fsync: 'on',
  checkpoint_timeout: "'30s'",
};

type ModeKey =
  | 'pgsnap'
  | 'postgres-only'
  | 'control'
  | 'pgsnap-fast'
  | 'basebackup-spread'
  | 'basebackup-fast'
  | 'checkpoint';
interface Mode {
  key: ModeKey;
  name: string;
  runs: number;
}
/**
 * In the order they are measured at each size, round by round; one run each, so that 1, 4 and 8 GB fit in
 * about half an hour. With --control, pgsnap's default mode and the control instead, alternating.
 */
const modes: Mode[] = controlRounds
  ? [
      { key: 'pgsnap', name: 'pgsnap (default)', runs: controlRounds },
      // PostgreSQL's part alone: the same backup start and stop with no pgsnap process and no snapshot.
      { key: 'postgres-only', name: 'pg_backup_start/stop', runs: controlRounds },
      // Right after it: the same window with nothing run in it, for as long as that backup took.
      { key: 'control', name: 'no backup (control)', runs: controlRounds },
    ]
  : [
      { key: 'pgsnap', name: 'pgsnap (default)', runs: 1 },
      { key: 'pgsnap-fast', name: 'pgsnap --fast', runs: 1 },
      { key: 'basebackup-spread', name: 'pg_basebackup -c spread', runs: 1 },
      { key: 'basebackup-fast', name: 'pg_basebackup -c fast', runs: 1 },
      ...(withCheckpoint ? [{ key: 'checkpoint' as const, name: 'CHECKPOINT', runs: 1 }] : []),
    ];

// BENCH_MODES=key,key keeps only those modes, for experiments.
if (process.env.BENCH_MODES) {
  const keep = process.env.BENCH_MODES.split(',');
  modes.splice(0, modes.length, ...modes.filter((m) => keep.includes(m.key)));
}

const report = new Report(resultsFile);
const say = (line?: string) => report.say(line);
const progress = (message: string) => report.progress(message);
cleanUpOnSignals(
  (signal) => progress(`${signal}: stopping what this benchmark started`),
  (signal) => report.write(`interrupted by ${signal}`),
);

interface SizeResult {
  gb: number;
  scale: number;
  dbBytes: number;
  /** The checkpoint settings as the server reported them while measuring. */
  server: string;
  runs: Record<ModeKey, Measured<Detail>[]>;
}

/** Everything one size makes is removed before the next size is loaded, to free its disk. */
async function measureSize(root: string, gb: number): Promise<SizeResult> {
  const mark = cleanupMark();
  try {
    return await measureSizeIn(join(root, `${gb}gb`), gb);
  } finally {
    cleanUp(mark);
  }
}

async function measureSizeIn(dir: string, gb: number): Promise<SizeResult> {
  const scale = Math.max(1, Math.round((gb * 1024) / mbPerScale));
  const { cluster, volume, db } = await clusterOnBtrfs(dir, {
    // Data and its index, pg_wal up to max_wal_size and beyond, room for btrfs metadata; the image is sparse.
    volumeMb: Math.ceil(gb * 1024 * 1.3) + 4096 + 2048,
    // Loading is not measured: no need to sync, archive or checkpoint often until it is done.
    settings: { ...settings, fsync: 'off', checkpoint_timeout: "'30min'", archive_command: "'/bin/true'" },
  });
  const env = { ...cluster.env, PGSNAP_STATE_DIR: mkdtempSync(join(dir, 'state-')) };
  const loadEnv = { ...env, PGDATABASE: loadDatabase };
  if (!sameDatabase) await db.query(`CREATE DATABASE ${loadDatabase}`);

  progress(`${gb} GB: loading pgbench scale ${scale} into database ${loadDatabase}`);
  await run(join(systemBin, 'pgbench'), ['-i', '-I', 'dtGvp', '-s', String(scale)], loadEnv);
  cluster.configure({
    ...measuredSettings,
    archive_command: `'test ! -f ${cluster.archiveDir}/%f && cp %p ${cluster.archiveDir}/%f'`,
  });
  await db.query('SELECT pg_reload_conf()');
  await db.query('CHECKPOINT');
  // What was written with fsync off is still dirty in the page cache: write it out now, not in a baseline.
  execFileSync('sync', ['-f', volume.mountPoint]);
  const size = await db.query<{ bytes: string }>('SELECT pg_database_size($1)::text AS bytes', [
    loadDatabase,
  ]);
  const dbBytes = Number(size.rows[0]!.bytes);
  const shown = await db.query<{ name: string; setting: string }>(
    `SELECT name, current_setting(name) AS setting FROM unnest(ARRAY['checkpoint_timeout',
       'checkpoint_completion_target', 'max_wal_size', 'fsync', 'shared_buffers']) AS name`,
  );
  const server = shown.rows.map((r) => `${r.name} = ${r.setting}`).join(', ');
  progress(`${gb} GB: loaded, database ${(dbBytes / 2 ** 30).toFixed(2)} GiB; ${server}`);

  const runs = Object.fromEntries(modes.map((m) => [m.key, []])) as unknown as SizeResult['runs'];
  const logDir = join(dir, 'pgbench-log');
  const rounds = Math.max(...modes.map((m) => m.runs));
  for (let i = 1; i <= rounds; i++) {
    for (const mode of modes.filter((m) => i <= m.runs)) {
      progress(`${gb} GB: ${mode.name} ${i}/${mode.runs} under load`);
      const label = `bench ${gb} GB ${mode.key} ${i}`;
      const backup = (): Promise<Detail> => {
        switch (mode.key) {
          case 'pgsnap':
          case 'pgsnap-fast':
            return pgsnapBackup(
              env,
              join(dir, `artifacts-${mode.key}-${i}`),
              label,
              mode.key === 'pgsnap-fast',
            );
          case 'basebackup-spread':
            return basebackup(env, join(dir, 'basebackup'), 'spread');
          case 'basebackup-fast':
            return basebackup(env, join(dir, 'basebackup'), 'fast');
          case 'checkpoint':
            return run(join(systemBin, 'psql'), ['-X', '-q', '-c', 'CHECKPOINT'], env).then(() => ({}));
          case 'postgres-only':
            // One psql session, as pgsnap holds one: start spread, stop waiting for the archive, like pgsnap run.
            return run(
              join(systemBin, 'psql'),
              [
                '-X',
                '-q',
                '-v',
                'ON_ERROR_STOP=1',
                '-c',
                `SELECT pg_backup_start('${label}', false)`,
                '-c',
                'SELECT lsn FROM pg_backup_stop(true)',
              ],
              env,
            ).then(() => ({}));
          case 'control':
            return sleep(runs.pgsnap.at(-1)?.wallMs ?? 40_000).then(() => ({}));
        }
      };
      const measured = await underLoad(cluster, db, loadEnv, logDir, backup, loadWindows);
      if (measured.detail.pgsnap) deleteSnapshots(measured.detail.pgsnap.snapshots, volume.mountPoint);
      runs[mode.key].push(measured);
    }
  }
  return { gb, scale, dbBytes, server, runs };
}

const share = (m: Measured<unknown>) => m.during.tps / m.base.tps;
/** Transactions the load did not complete during the backup, against its baseline rate; unlike the share, it grows with the length of the backup. */
const lost = (m: Measured<unknown>) => ((m.base.tps - m.during.tps) * m.wallMs) / 1000;

const widths = [23, 7, 8, 7, 7, 7, 8, 7, 7, 7, 9, 7, 7, 7, 7];

function printSize(r: SizeResult): void {
  say(`${r.gb} GB: database ${(r.dbBytes / 2 ** 30).toFixed(2)} GiB (pgbench scale ${r.scale}); ${r.server}`);
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
      'base ckpt',
      'ckpt s',
      'buffers',
      'in ckpt',
      'outside',
    ]),
  );
  const rows: Array<[string, Measured<Detail>]> = modes.flatMap((mode) =>
    r.runs[mode.key].map((m, i): [string, Measured<Detail>] => [
      mode.runs > 1 ? `${mode.name} ${i + 1}` : mode.name,
      m,
    ]),
  );
  for (const [name, m] of rows) {
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
        `${(m.baseInCheckpoint * 100).toFixed(0)}%/${m.baseCompleteCheckpoints.length}`,
        (m.checkpoints.reduce((sum, c) => sum + c.to - c.from, 0) / 1000).toFixed(2),
        String(m.checkpoints.reduce((sum, c) => sum + c.buffers, 0)),
        m.inCheckpoints.ms >= 1000 ? pct(m.inCheckpoints.tps / m.base.tps) : '-',
        m.outsideCheckpoints.ms >= 1000 ? pct(m.outsideCheckpoints.tps / m.base.tps) : '-',
      ]),
    );
  }
  for (const [name, m] of rows) {
    const notes: string[] = [];
    const p = m.detail.pgsnap;
    if (p) {
      notes.push(
        `pg_backup_start ${secs(p.startCallMs)}, in backup mode ${secs(p.heldMs - p.startCallMs)} ` +
          `(to pg_backup_stop, ${p.stopCallMs} ms), archive wait ${p.archiveWaitMs} ms`,
      );
    }
    if (m.detail.copiedBytes !== undefined) {
      notes.push(`copied ${(m.detail.copiedBytes / 2 ** 30).toFixed(2)} GiB`);
    }
    notes.push(
      m.startedIntoCheckpointMs === undefined
        ? 'started with no checkpoint running'
        : `started ${secs(m.startedIntoCheckpointMs)} into a running checkpoint`,
    );
    const during = m.checkpoints.map((c) =>
      c.running
        ? `${c.kind} (still running when the log was read; ${secs(c.to - c.from)} of it in the window)`
        : `${c.kind} ${secs(c.to - c.from)} (${c.buffers} buffers, sync ${secs(c.syncMs)})`,
    );
    notes.push(`checkpoints overlapping it: ${during.length ? during.join(', ') : 'none'}`);
    say(`  ${name}: ${notes.join('; ')}`);
    const tpsSteps = (x: { min: number; max: number }) => `${x.min.toFixed(0)}-${x.max.toFixed(0)}`;
    const stall = (x: { cpu: number; io: number } | undefined) =>
      x ? `cpu ${pct(x.cpu)}, io ${pct(x.io)}` : 'not available';
    say(
      `    noise: TPS in 5 s steps, baseline ${tpsSteps(m.baseSteps)}` +
        (m.duringSteps ? `, during ${tpsSteps(m.duringSteps)}` : '') +
        `; machine stalled (PSI some), baseline ${stall(m.baseStall)}, during ${stall(m.duringStall)}`,
    );
    say(
      `    per second (share of baseline TPS in tenths, + at or above it; | checkpoint starts, ! ends): ${m.profile}`,
    );
  }
  say();
}

/** The modes that take a backup; the CHECKPOINT reference, PostgreSQL alone and the control are not. */
const backupModes = modes.filter((m) => !['checkpoint', 'control', 'postgres-only'].includes(m.key));

function printSummary(results: SizeResult[]): void {
  say('Summary (median of the runs of each mode at each size)');
  const w = [23, 5, 7, 9, 7, 7, 9];
  say(columns(w, ['backup', 'size', 'wall s', 'TPS share', 'lost tx', 'WAL MB', 'base ckpt']));
  for (const mode of modes) {
    for (const r of results) {
      const runs = r.runs[mode.key];
      say(
        columns(w, [
          mode.name,
          `${r.gb} GB`,
          (median(runs.map((m) => m.wallMs)) / 1000).toFixed(2),
          pct(median(runs.map(share))),
          median(runs.map(lost)).toFixed(0),
          (median(runs.map((m) => m.walBytes)) / 2 ** 20).toFixed(1),
          `${(median(runs.map((m) => m.baseInCheckpoint)) * 100).toFixed(0)} %`,
        ]),
      );
    }
  }
  say();
  const all = results.flatMap((r) => modes.flatMap((mode) => r.runs[mode.key]));
  const withoutRegular = all.filter((m) => !m.baseCompleteCheckpoints.some((c) => c.kind === 'time')).length;
  say(
    `baselines: ${all.length - withoutRegular} of ${all.length} held a whole regular (timed) checkpoint; ` +
      `inside checkpoints ${pct(Math.min(...all.map((m) => m.baseInCheckpoint)))} to ` +
      `${pct(Math.max(...all.map((m) => m.baseInCheckpoint)))} of the time`,
  );
  const first = results[0]!;
  const last = results.at(-1)!;
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  for (const mode of backupModes) {
    const name = mode.key === 'pgsnap' ? `${mode.name}, the goals` : `${mode.name} (for comparison)`;
    const runs = (r: SizeResult) => r.runs[mode.key];
    if (results.length > 1) {
      const growth = median(runs(last).map((m) => m.wallMs)) / median(runs(first).map((m) => m.wallMs));
      say(
        `${name}: backup time ${first.gb} GB -> ${last.gb} GB grows ${growth.toFixed(2)}x ` +
          `(goal <= 1.2x: ${verdict(growth <= 1.2)})`,
      );
    }
    const shares = results.map((r) => median(runs(r).map(share)));
    const lowest = Math.min(...shares);
    say(
      `${name}: TPS during backup ${shares.map(pct).join(' / ')} of baseline at ${results.map((r) => `${r.gb}`).join(' / ')} GB ` +
        `(goal >= 95 % at every size: ${verdict(lowest >= 0.95)})`,
    );
  }
  if (controlRounds) {
    for (const r of results) {
      say(
        `${r.gb} GB, TPS share of each round: ` +
          modes.map((m) => `${m.name} ${r.runs[m.key].map((x) => pct(share(x))).join(', ')}`).join('; '),
      );
    }
    // The control is the same window with nothing in it: what the load does there anyway (the phase of its
    // checkpoints, the machine's noise). A backup's share over the control's share of its round is what the
    // backup itself costs.
    for (const mode of modes.filter((m) => m.key !== 'control')) {
      const ratios = results.map((r) =>
        r.runs[mode.key].map((x, round) => share(x) / share(r.runs.control[round]!)),
      );
      say(
        `${mode.name}, TPS share over the control's share of the same round: ` +
          results
            .map((r, i) => `${r.gb} GB ${ratios[i]!.map(pct).join(', ')} (median ${pct(median(ratios[i]!))})`)
            .join('; '),
      );
    }
  }
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
  onCleanup(() => rmSync(root, { recursive: true, force: true }));

  say(
    `backup-vs-basebackup: PostgreSQL 15, PGDATA on btrfs on a loop device; ${cpus().length} cores, ` +
      `${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, shared with other work (noise); ${new Date().toISOString()}`,
  );
  say(
    `load: pgbench -c 2 -j 2 unthrottled in database ${loadDatabase} (the backups connect to postgres${sameDatabase ? ' too: --same-database' : ''}), ` +
      'fsync on; checkpoint_timeout = 30s (the minimum), ' +
      'checkpoint_completion_target = 0.9 (the default), max_wal_size = 4GB: a regular checkpoint is spread ' +
      'over ~27 s of every 30 s, in the baseline as during the backup',
  );
  say(
    `baseline: the ${loadWindows.baselineMs / 1000} s from ${loadWindows.baselineLeadMs / 1000} s before the start of the first regular ` +
      'checkpoint after the load starts (~30 s after a CHECKPOINT): one whole regular checkpoint and the first ' +
      'half of the next, so baseline and backup are measured under the same checkpoint regime; each backup ' +
      'starts ~14 s into that next one, mid-cycle (a spread start waits for it, then for one of its own)',
  );
  say(
    `backups, each under its own pgbench run, ${modes.map((m) => `${m.name} x${m.runs}`).join(', ')}: ` +
      'pgsnap (default) = pgsnap run --provider btrfs (pg_backup_start with fast => false: a spread ' +
      'checkpoint); --fast = an immediate one; pg_basebackup -X stream -c spread (its default) / -c fast' +
      (withCheckpoint
        ? '; CHECKPOINT = psql -c CHECKPOINT alone, the reference for the immediate checkpoint every fast start forces'
        : '') +
      (controlRounds
        ? '; pg_backup_start/stop = psql running pg_backup_start(label, false) and pg_backup_stop(true) in ' +
          'one session, no snapshot: what PostgreSQL itself costs; no backup (control) = the same window as the ' +
          'pgsnap (default) run of the round (same phase, same length), with nothing run in it; the three alternate'
        : ''),
  );
  say(
    'columns: wall time of the backup command; TPS in the baseline and during the backup, their ratio, and ' +
      'the transactions lost against the baseline rate; ' +
      'mean latency (ms) in both, p95 during; WAL from pg_current_wal_lsn() before to after (it includes ' +
      'the rest of the segment skipped by the switch at the end of every backup); base ckpt: share of the ' +
      'baseline inside checkpoints / checkpoints that started and ended inside it; checkpoints overlapping ' +
      'the backup (seconds, buffers written, from the server log; one still running when the log was read ' +
      'counts to the end of the backup) and the TPS share inside them and outside ' +
      'them (- under 1 s). noise: the lowest and highest TPS over 5 s steps, and the share of time some task ' +
      'on the machine waited for a CPU or for I/O (/proc/pressure; our own load included)',
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
  report.write('completed');
} catch (error) {
  // After a signal, its handler cleans up and records the interruption.
  if (!wasInterrupted()) {
    console.error(error);
    say(`FAILED: ${(error as Error).message}`);
    await stopChildren();
    report.write('failed');
    process.exitCode = 1;
  }
} finally {
  if (!wasInterrupted()) cleanUp();
}
