/**
 * bench/wal-archive: archiving under a pgbench write load, with archive_command
 *   - `cp` into a directory (the floor),
 *   - `pgsnap wal-push` (synchronous) and `pgsnap wal-push --async` with the
 *     shell fast path that `wal-push --print-command --async` writes (pgsnap
 *     starts only when the pusher is not ahead), each to a file:// repository
 *     and to a local S3 server (s3rver),
 * all in the same run, one fresh cluster each, the same load for each.
 *
 * Printed for each: segments archived per second (from the start of the load
 * until the last segment it wrote is archived), the archiver's largest backlog
 * (`.ready` files in pg_wal/archive_status, sampled every 50 ms), and the
 * latency of one archive_command (median and 95th percentile, timed by a
 * wrapper that is the same for all). Goal: async push to the local S3 server
 * sustains at least 70 % of cp's segments per second, and the backlog never
 * exceeds 4 segments.
 *
 * With `bulk`, each pgbench transaction inserts 200 rows of 400 bytes instead of
 * the TPC-B-like one, for a WAL rate that makes the archiver work.
 *
 * usage: npx tsx bench/wal-archive.ts [seconds=30] [clients=4] [scale=10] [tpcb|bulk]
 */
import { execFile } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { confQuote, shellQuote } from '../agent/wal/shell-lines.ts';
import { archiverStats, currentSegment, waitArchived } from '../test/support/archiving.ts';
import { Cluster, newestAvailableMajor, ownedDir } from '../test/support/cluster.ts';
import { pgbench } from '../test/support/pgbench.ts';
import { testRepository } from '../test/support/repository.ts';
import { LocalS3 } from '../test/support/s3.ts';
import { stopWalHelpers } from '../test/support/wal-helpers.ts';
import { loadAverage } from './lib/machine.ts';
import { printAndRecord } from './lib/report.ts';
import { percentile } from './lib/stats.ts';

const run = promisify(execFile);
const seconds = Number(process.argv[2] ?? 30);
const clients = Number(process.argv[3] ?? 4);
const scale = Number(process.argv[4] ?? 10);
const mode = process.argv[5] === 'bulk' ? 'bulk' : 'tpcb';

interface Target {
  name: string;
  /** archive_command, a shell line without the postgresql.conf quotes. */
  command(cluster: Cluster): string;
  cleanup?: () => void;
}

interface Result {
  name: string;
  segments: number;
  seconds: number;
  maxBacklog: number;
  latencies: number[];
  failures: number;
  /** What the failed archive_command calls said (from the server log). */
  reasons: string[];
}

const debug = (m: string) => process.env.BENCH_DEBUG && process.stderr.write(`  ${m}\n`);

async function measure(target: Target): Promise<Result> {
  const cluster = await Cluster.create({ settings: { archive_command: "'/bin/false'" } });
  try {
    const timings = join(cluster.root, 'archive-times');
    const wrapper = join(cluster.root, 'timed.sh');
    writeFileSync(
      wrapper,
      `#!/bin/sh\nstart=$(date +%s%N)\nsh -c "$1"\nrc=$?\necho "$start $(date +%s%N) $rc" >> ${timings}\nexit $rc\n`,
    );
    chmodSync(wrapper, 0o755);
    ownedDir(join(cluster.root, 'spool'));
    ownedDir(join(cluster.root, 'archive'));
    writeFileSync(timings, '');
    await run('chown', ['postgres', timings]);
    await pgbench(cluster, ['-i', '-s', String(scale), '-q']);
    const script = join(cluster.root, 'bulk.sql');
    writeFileSync(
      script,
      "\\set id random(1, 1000000000)\nINSERT INTO bulk SELECT g, repeat('x', 400) FROM generate_series(:id, :id + 199) g;\n",
    );
    await cluster.query('CREATE TABLE bulk (id bigint, payload text)');
    debug('initialised');
    // Archiving starts now, with the initial load's WAL already gone: only the benchmark's WAL is measured.
    await cluster.query('CHECKPOINT');
    cluster.configure({ archive_command: confQuote(`${wrapper} ${shellQuote(target.command(cluster))}`) });
    await cluster.query('SELECT pg_reload_conf()');
    const initial = await currentSegment(cluster);
    await cluster.query('SELECT pg_switch_wal()');
    await waitArchived(cluster, initial, archivedWait);
    debug('archiving caught up');
    writeFileSync(timings, '');
    const before = await archiverStats(cluster);

    let maxBacklog = 0;
    let sampling = true;
    const sampler = (async () => {
      const client = await cluster.client();
      while (sampling) {
        const { rows } = await client.query<{ n: string }>(
          "SELECT count(*) AS n FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'",
        );
        maxBacklog = Math.max(maxBacklog, Number(rows[0]!.n));
        await new Promise((r) => setTimeout(r, 50));
      }
      await client.end();
    })();
    const started = performance.now();
    const load = mode === 'bulk' ? ['-f', script] : [];
    await pgbench(cluster, ['-T', String(seconds), '-c', String(clients), '-j', '2', '-n', ...load]);
    const current = await currentSegment(cluster);
    await cluster.query('SELECT pg_switch_wal()');
    await waitArchived(cluster, current, archivedWait);
    const elapsed = (performance.now() - started) / 1000;
    sampling = false;
    await sampler;

    const after = await archiverStats(cluster);
    const latencies = readFileSync(timings, 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((line) => line.split(' ').map(Number))
      .filter(([, , rc]) => rc === 0)
      .map(([start, end]) => (end! - start!) / 1e6);
    return {
      name: target.name,
      segments: after.archived - before.archived,
      seconds: elapsed,
      maxBacklog,
      latencies,
      failures: after.failed - before.failed,
      reasons: [...new Set(cluster.log().match(/pgsnap: .*/g) ?? [])],
    };
  } finally {
    cluster.stopSync('immediate');
    await stopWalHelpers(cluster.root);
    cluster.destroy();
    target.cleanup?.();
  }
}

/** Archiving is timed up to the last segment: polled often, given 10 minutes. */
const archivedWait = { timeoutMs: 600_000, intervalMs: 20 };

const s3 = await LocalS3.start();
try {
  const pgsnapTarget = (name: string, kind: 'file' | 's3', async: boolean): Target => {
    // A repository of its own per run: every cluster has a new system identifier.
    const repo = testRepository(kind, s3, 'bench');
    return {
      name,
      command: (cluster) =>
        async
          ? repo.asyncArchiveCommandLine({ spoolRoot: join(cluster.root, 'spool'), pgdata: cluster.dataDir })
          : repo.archiveCommand().replace(/^'|'$/g, ''),
      cleanup: () => repo.destroy(),
    };
  };
  const targets: Array<() => Target> = [
    () => ({ name: 'cp to a directory', command: (cluster) => `cp %p ${cluster.root}/archive/%f` }),
    () => pgsnapTarget('pgsnap sync file://', 'file', false),
    () => pgsnapTarget('pgsnap async file://', 'file', true),
    () => pgsnapTarget('pgsnap sync s3 (local)', 's3', false),
    () => pgsnapTarget('pgsnap async s3 (local)', 's3', true),
  ];
  const results: Result[] = [];
  const loadBefore = loadavg();
  // BENCH_ONLY=regex runs the floor and the matching variants only, for quick iterations.
  const only = process.env.BENCH_ONLY ? new RegExp(process.env.BENCH_ONLY) : undefined;
  for (const [index, make] of targets.entries()) {
    const target = make();
    if (index > 0 && only && !only.test(target.name)) {
      target.cleanup?.();
      continue;
    }
    process.stderr.write(`${target.name}...\n`);
    results.push(await measure(target));
  }
  const floor = results[0]!;
  const floorRate = floor.segments / floor.seconds;
  const lines = [
    `wal-archive: pgbench ${mode === 'bulk' ? '-f bulk.sql (200 rows of 400 bytes a transaction) ' : ''}-T ${seconds} ` +
      `-c ${clients} -j 2 (scale ${scale}), PostgreSQL ${newestAvailableMajor()}, ` +
      `${new Date().toISOString()}`,
    `load average (1, 5, 15 min) before ${loadAverage(loadBefore)}, after ${loadAverage()}; 2 CPUs shared with other work`,
    '',
    'archive_command           segments  seconds  seg/s  vs cp  max backlog  latency p50 / p95 ms  failures',
    ...results.map((r) => {
      const rate = r.segments / r.seconds;
      return [
        r.name.padEnd(24),
        String(r.segments).padStart(9),
        r.seconds.toFixed(1).padStart(8),
        rate.toFixed(2).padStart(6),
        `${Math.round((rate / floorRate) * 100)}%`.padStart(6),
        String(r.maxBacklog).padStart(12),
        `${percentile(r.latencies, 0.5).toFixed(0)} / ${percentile(r.latencies, 0.95).toFixed(0)}`.padStart(
          21,
        ),
        String(r.failures).padStart(9),
      ].join(' ');
    }),
  ];
  for (const r of results.filter((r) => r.reasons.length > 0)) {
    lines.push('', `${r.name}: ${r.reasons.join('\n  ')}`);
  }
  printAndRecord(`wal-archive${mode === 'bulk' ? '-bulk' : ''}.txt`, lines);
} finally {
  await s3.destroy();
}
