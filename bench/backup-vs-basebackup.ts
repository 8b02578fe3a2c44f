/**
 * bench/backup-vs-basebackup: what a backup costs a busy server, pgsnap with btrfs snapshots against
 * pg_basebackup, on the same cluster at several sizes. How it measures, and why each choice, is in
 * bench/README.md ("How the backup-cost bench measures").
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { btrfsUnavailable } from '../test/support/btrfs.ts';
import { systemBin } from '../test/support/cluster.ts';
import { backupCostPrinter, type Mode, type SizeResult } from './lib/backup-cost-report.ts';
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
import { type LoadWindows, underLoad } from './lib/under-load.ts';

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

const { printSize, printSummary } = backupCostPrinter({ say, modes, controlRounds });

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
