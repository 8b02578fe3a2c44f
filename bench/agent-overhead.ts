/**
 * bench/agent-overhead: what the agent adds on top of PostgreSQL's own
 * pg_backup_start / pg_backup_stop, over repeated begin+end pairs, in the two
 * ways a session can be held, side by side in the same run: by the resident
 * agent service (`pgsnap agent`: two Node.js starts per pair, begin and end)
 * and by a holder process that begin spawns (three: begin, holder, end).
 *
 * For each: the wall time of `pgsnap begin` and `pgsnap end`, the time the
 * server itself spent in the two calls (from its log,
 * log_min_duration_statement = 0), and the archive wait. As peers, the same
 * pair run by one psql session (`pg_backup_stop(true)` waits for the archive
 * itself), and a bare `node -e 0`. Goal: the agent adds at most 300 ms per
 * pair (median).
 *
 * Beside them, in the same runs, the start of one command as archive_command
 * and restore_command pay it for every WAL file where the fast path does not
 * answer (`wal-push --help`: the command's code loaded and started, nothing
 * done), from the bundle (`node dist/pgsnap.mjs`, split per command) and from
 * the single executable (dist/pgsnap-linux-x64, Node.js 24, each command an
 * asset with its V8 code cache), with a bare `-e 0` of the executable's
 * Node.js. Goal: the
 * single executable starts no slower than the bundle (median).
 *
 * usage: npx tsx bench/agent-overhead.ts [runs=20] [major=15]
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Cluster, type Major, systemBin } from '../test/support/cluster.ts';
import { pgsnap, pgsnapBin } from '../test/support/pgsnap.ts';
import { loadAverage } from './lib/machine.ts';
import { median } from './lib/stats.ts';

const runs = Number(process.argv[2] ?? 20);
const project = resolve(import.meta.dirname, '..');
// Both executables, as npm run package makes them (left as they are when up to date).
spawnSync(process.execPath, [join(project, 'agent/package.mjs')], { cwd: project, stdio: 'inherit' });
const executable = join(project, 'dist/pgsnap-linux-x64');
const node24 = spawnSync(process.execPath, [join(project, 'agent/node-binaries.mjs'), 'x64'], {
  encoding: 'utf8',
}).stdout.trim();

/** Wall time of one command, in ms; it must succeed. */
function timed(file: string, args: string[]): number {
  const t = performance.now();
  const result = spawnSync(file, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const ms = performance.now() - t;
  if (result.status !== 0)
    throw new Error(`${file} ${args.join(' ')}: exit ${result.status}\n${result.stderr}`);
  return ms;
}

interface Starts {
  bundle: number;
  /** The same bundle on the executable's Node.js: what the single-file format itself costs or saves. */
  bundle24: number;
  executable: number;
  node24: number;
}
const major = Number(process.argv[3] ?? 15) as Major;

/** Server-side durations of the backup calls, in order, from the log. */
function serverDurations(log: string, fn: RegExp): number[] {
  return [...log.matchAll(/duration: ([\d.]+) ms\s+(?:execute [^:]*|statement): (.*)/g)]
    .filter((m) => fn.test(m[2]!))
    .map((m) => Number(m[1]));
}

interface Pair {
  begin: number;
  end: number;
  archiveWait: number;
}

async function pair(env: NodeJS.ProcessEnv, label: string): Promise<Pair> {
  let t = performance.now();
  const begun = await pgsnap(['begin', '--label', label, '--fast', '--json'], env);
  const begin = performance.now() - t;
  if (begun.code !== 0) throw new Error(begun.stderr);
  t = performance.now();
  const ended = await pgsnap(['end', '--json'], env);
  const end = performance.now() - t;
  if (ended.code !== 0) throw new Error(ended.stderr);
  return { begin, end, archiveWait: ended.json!.archiveWaitMs as number };
}

// Two state directories: the service runs on one; on the other begin finds no service and spawns a holder.
const serviceStateDir = mkdtempSync(join(tmpdir(), 'pgsnap-bench-service-'));
const holderStateDir = mkdtempSync(join(tmpdir(), 'pgsnap-bench-holder-'));
let service: ChildProcess | undefined;
const cluster = await Cluster.create({
  major,
  settings: { log_min_duration_statement: '0', log_statement: "'none'" },
});
try {
  await cluster.query(
    'CREATE TABLE filler AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g',
  );
  const loadAtStart = loadAverage();
  service = spawn(process.execPath, [pgsnapBin, 'agent'], {
    env: { PATH: process.env.PATH, PGSNAP_STATE_DIR: serviceStateDir },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    service!.stderr!.on('data', (chunk: Buffer) => chunk.toString().includes('listening on') && resolve());
    service!.on('exit', () => reject(new Error('pgsnap agent exited')));
  });
  const serviceEnv = { ...cluster.env, PGSNAP_STATE_DIR: serviceStateDir };
  const holderEnv = { ...cluster.env, PGSNAP_STATE_DIR: holderStateDir };
  const rows: Array<{ service: Pair; holder: Pair; psql: number; node: number; starts: Starts }> = [];
  for (let i = 0; i < runs; i++) {
    const held = await pair(serviceEnv, `bench service ${i}`);
    const spawned = await pair(holderEnv, `bench holder ${i}`);
    let t = performance.now();
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
    // The floor under any Node.js command on this machine right now, measured in the same run.
    t = performance.now();
    spawnSync(process.execPath, ['-e', '0']);
    const node = performance.now() - t;
    const starts = {
      bundle: timed(process.execPath, [pgsnapBin, 'wal-push', '--help']),
      bundle24: timed(node24, [pgsnapBin, 'wal-push', '--help']),
      executable: timed(executable, ['wal-push', '--help']),
      node24: timed(node24, ['-e', '0']),
    };
    rows.push({ service: held, holder: spawned, psql, node, starts });
  }

  const log = cluster.log();
  const isStart = major >= 15 ? /pg_backup_start/ : /pg_start_backup/;
  const isStop = major >= 15 ? /pg_backup_stop/ : /pg_stop_backup/;
  // Calls come in threes: the service's pair, the holder's, psql's.
  const starts = serverDurations(log, isStart);
  const stops = serverDurations(log, isStop);
  if (starts.length !== 3 * runs || stops.length !== 3 * runs) {
    throw new Error(
      `expected ${3 * runs} logged calls of each, found ${starts.length} starts and ${stops.length} stops`,
    );
  }
  const of = (values: number[], k: number) => values.filter((_, i) => i % 3 === k);
  const pg = {
    service: { start: of(starts, 0), stop: of(stops, 0) },
    holder: { start: of(starts, 1), stop: of(stops, 1) },
  };
  const overhead = (mode: 'service' | 'holder') =>
    rows.map((row, i) => row[mode].begin + row[mode].end - pg[mode].start[i]! - pg[mode].stop[i]!);
  const serviceOverheads = overhead('service');
  const holderOverheads = overhead('holder');

  const f = (n: number) => n.toFixed(0).padStart(6);
  console.log(`pgsnap agent overhead: PostgreSQL ${major}, ${runs} begin+end pairs in each mode (ms)`);
  console.log(
    '       |          agent service (pgsnap agent)           |       holder spawned by begin (no service)      |',
  );
  console.log(
    '   run |  begin pg_start    end pg_stop arch.w overhead |  begin pg_start    end pg_stop arch.w overhead | psql s+s(true) node -e 0 | bundle bndl24  s.exe node24 -e 0',
  );
  const line = (
    name: string,
    s: Pair,
    sp: { start: number; stop: number },
    so: number,
    h: Pair,
    hp: { start: number; stop: number },
    ho: number,
    psql: number,
    node: number,
    st: Starts,
  ) =>
    `${name.padStart(6)} | ${f(s.begin)}   ${f(sp.start)} ${f(s.end)}  ${f(sp.stop)} ${f(s.archiveWait)}   ${f(so)} | ` +
    `${f(h.begin)}   ${f(hp.start)} ${f(h.end)}  ${f(hp.stop)} ${f(h.archiveWait)}   ${f(ho)} |         ${f(psql)}    ${f(node)} | ${f(st.bundle)} ${f(st.bundle24)} ${f(st.executable)}      ${f(st.node24)}`;
  rows.forEach((row, i) => {
    console.log(
      line(
        String(i + 1),
        row.service,
        { start: pg.service.start[i]!, stop: pg.service.stop[i]! },
        serviceOverheads[i]!,
        row.holder,
        { start: pg.holder.start[i]!, stop: pg.holder.stop[i]! },
        holderOverheads[i]!,
        row.psql,
        row.node,
        row.starts,
      ),
    );
  });
  const medianPair = (mode: 'service' | 'holder'): Pair => ({
    begin: median(rows.map((r) => r[mode].begin)),
    end: median(rows.map((r) => r[mode].end)),
    archiveWait: median(rows.map((r) => r[mode].archiveWait)),
  });
  const nodeStart = median(rows.map((r) => r.node));
  const medianStarts: Starts = {
    bundle: median(rows.map((r) => r.starts.bundle)),
    bundle24: median(rows.map((r) => r.starts.bundle24)),
    executable: median(rows.map((r) => r.starts.executable)),
    node24: median(rows.map((r) => r.starts.node24)),
  };
  console.log(
    line(
      'median',
      medianPair('service'),
      { start: median(pg.service.start), stop: median(pg.service.stop) },
      median(serviceOverheads),
      medianPair('holder'),
      { start: median(pg.holder.start), stop: median(pg.holder.stop) },
      median(holderOverheads),
      median(rows.map((r) => r.psql)),
      nodeStart,
      medianStarts,
    ),
  );
  const verdict = (ms: number) => `${ms.toFixed(0)} ms (goal <= 300 ms: ${ms <= 300 ? 'met' : 'NOT met'})`;
  console.log(
    '\nagent overhead per begin+end pair (median, wall minus time in pg_backup_start/stop):\n' +
      `  with the agent service:       ${verdict(median(serviceOverheads))}; ` +
      `two bare Node.js starts cost ${(2 * nodeStart).toFixed(0)} ms of it\n` +
      `  with a holder spawned by begin: ${verdict(median(holderOverheads))}; ` +
      `three bare Node.js starts cost ${(3 * nodeStart).toFixed(0)} ms of it`,
  );
  console.log(
    '\nstart of pgsnap wal-push --help (median), beside bare starts:\n' +
      `  node dist/pgsnap.mjs (Node.js ${process.versions.node}, split bundle): ${medianStarts.bundle.toFixed(0)} ms; ` +
      `node -e 0: ${nodeStart.toFixed(0)} ms\n` +
      `  node24 dist/pgsnap.mjs (the same bundle on the executable's Node.js): ${medianStarts.bundle24.toFixed(0)} ms\n` +
      `  dist/pgsnap-linux-x64 (single executable):           ${medianStarts.executable.toFixed(0)} ms; ` +
      `its Node.js -e 0: ${medianStarts.node24.toFixed(0)} ms\n` +
      `  single executable no slower than the bundle: ${medianStarts.executable <= medianStarts.bundle ? 'met' : 'NOT met'}`,
  );
  console.log(
    `load average at the start: ${loadAtStart}; at the end: ${loadAverage()} (on ${cpus().length} cores)`,
  );
} finally {
  if (service && service.exitCode === null) {
    service.kill('SIGTERM');
    await new Promise((resolve) => service!.once('exit', resolve));
  }
  cluster.destroy();
  rmSync(serviceStateDir, { recursive: true, force: true });
  rmSync(holderStateDir, { recursive: true, force: true });
}
