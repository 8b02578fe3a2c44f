/**
 * bench/agent-overhead: what the agent adds on top of PostgreSQL's own
 * pg_backup_start / pg_backup_stop, over repeated begin+end pairs.
 *
 * Side by side from the same runs: the wall time of `pgsnap begin` and
 * `pgsnap end`, the time the server itself spent in the two calls (from its
 * log, log_min_duration_statement = 0), and the archive wait. As a peer, the
 * same pair run by one psql session (`pg_backup_stop(true)` waits for the
 * archive itself). Goal: the agent adds at most 300 ms per pair (median).
 *
 * usage: npx tsx bench/agent-overhead.ts [runs=20] [major=15]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, type Major, systemBin } from '../test/support/cluster.ts';
import { pgsnap } from '../test/support/pgsnap.ts';

const runs = Number(process.argv[2] ?? 20);
const major = Number(process.argv[3] ?? 15) as Major;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Server-side durations of the backup calls, in order, from the log. */
function serverDurations(log: string, fn: RegExp): number[] {
  return [...log.matchAll(/duration: ([\d.]+) ms\s+(?:execute [^:]*|statement): (.*)/g)]
    .filter((m) => fn.test(m[2]!))
    .map((m) => Number(m[1]));
}

const stateDir = mkdtempSync(join(tmpdir(), 'pgsnap-bench-state-'));
const cluster = await Cluster.create({
  major,
  settings: { log_min_duration_statement: '0', log_statement: "'none'" },
});
try {
  await cluster.query(
    'CREATE TABLE filler AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g',
  );
  const env = { ...cluster.env, PGSNAP_STATE_DIR: stateDir };
  const rows: Array<{ begin: number; end: number; archiveWait: number; psql: number; node: number }> = [];
  for (let i = 0; i < runs; i++) {
    let t = performance.now();
    const begun = await pgsnap(['begin', '--label', `bench ${i}`, '--fast', '--json'], env);
    const begin = performance.now() - t;
    if (begun.code !== 0) throw new Error(begun.stderr);
    t = performance.now();
    const ended = await pgsnap(['end', '--json'], env);
    const end = performance.now() - t;
    if (ended.code !== 0) throw new Error(ended.stderr);

    t = performance.now();
    const peer = spawnSync(
      join(systemBin, 'psql'),
      [
        '-X',
        '-q',
        ...cluster.clientArgs,
        '-d',
        'postgres',
        '-c',
        `SELECT pg_backup_start('psql ${i}', true)`,
        '-c',
        'SELECT * FROM pg_backup_stop(true)',
      ],
      { encoding: 'utf8' },
    );
    const psql = performance.now() - t;
    if (peer.status !== 0) throw new Error(peer.stderr);
    // The floor under any Node.js agent on this machine right now: begin+end start the runtime three times
    // (begin, the holder, end). Measured in the same run, so load from elsewhere shows in both columns.
    t = performance.now();
    spawnSync(process.execPath, ['-e', '0']);
    const node = performance.now() - t;
    rows.push({ begin, end, archiveWait: ended.json!.archiveWaitMs as number, psql, node });
  }

  const log = cluster.log();
  const isStart = major >= 15 ? /pg_backup_start/ : /pg_start_backup/;
  const isStop = major >= 15 ? /pg_backup_stop/ : /pg_stop_backup/;
  // Calls alternate agent, psql: the agent's are the even ones.
  const starts = serverDurations(log, isStart).filter((_, i) => i % 2 === 0);
  const stops = serverDurations(log, isStop).filter((_, i) => i % 2 === 0);
  if (starts.length !== runs || stops.length !== runs) {
    throw new Error(
      `expected ${runs} logged calls of each, found ${starts.length} starts and ${stops.length} stops`,
    );
  }

  const f = (n: number) => n.toFixed(0).padStart(7);
  console.log(`pgsnap agent overhead: PostgreSQL ${major}, ${runs} begin+end pairs (ms)`);
  console.log(
    '  run   begin  pg_start      end  pg_stop  arch.wait  overhead | psql start+stop(true)  node -e 0',
  );
  const overheads = rows.map((row, i) => row.begin + row.end - starts[i]! - stops[i]!);
  rows.forEach((row, i) => {
    console.log(
      `${String(i + 1).padStart(5)} ${f(row.begin)} ${f(starts[i]!)}  ${f(row.end)}  ${f(stops[i]!)}    ${f(row.archiveWait)}   ${f(overheads[i]!)} | ${f(row.psql)}              ${f(row.node)}`,
    );
  });
  const m = (values: number[]) => f(median(values));
  console.log(
    `median ${m(rows.map((r) => r.begin))} ${m(starts)}  ${m(rows.map((r) => r.end))}  ${m(stops)}    ${m(rows.map((r) => r.archiveWait))}   ${m(overheads)} | ${m(rows.map((r) => r.psql))}              ${m(rows.map((r) => r.node))}`,
  );
  const overhead = median(overheads);
  console.log(
    `\nagent overhead per begin+end pair (median, wall minus time in pg_backup_start/stop): ${overhead.toFixed(0)} ms ` +
      `(goal <= 300 ms: ${overhead <= 300 ? 'met' : 'NOT met'}); of that, archive wait ${median(rows.map((r) => r.archiveWait)).toFixed(0)} ms`,
  );
  const nodeStart = median(rows.map((r) => r.node));
  console.log(
    `three bare Node.js starts (begin, holder, end) cost ${(3 * nodeStart).toFixed(0)} ms on this machine in this run; ` +
      `what pgsnap's own code adds beyond them: ${(overhead - 3 * nodeStart).toFixed(0)} ms`,
  );
  console.log(
    `load average at the end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} on ${cpus().length} cores`,
  );
} finally {
  cluster.destroy();
  rmSync(stateDir, { recursive: true, force: true });
}
