/**
 * bench/wal-restore: recovery of the same WAL with restore_command
 *   - `cp` from a directory (the floor),
 *   - `pgsnap wal-fetch` and `pgsnap wal-fetch --prefetch 8`, from a file://
 *     repository and from a local S3 server (s3rver),
 *   - the same with the shell fast path that `wal-fetch --print-command
 *     --prefetch 8` writes (`+sh`: the shell moves prefetched segments into
 *     place and answers "not there" from the live prefetcher's markers), so
 *     that pgsnap starts only for files not fetched ahead,
 * all in the same run: one base backup taken under pgbench, then the WAL of a
 * pgbench run replayed on a fresh copy of the backup for each. Timed from
 * starting the server until it has left recovery. Goal: pgsnap at most 1.3× cp.
 *
 * The WAL's make-up sets the floor: the default 30 s of pgbench right after
 * the base backup's checkpoint is dense in full-page images, which replay fast
 * (about 60 ms a segment with cp on a 2-core machine: as fast as the
 * prefetcher can decompress and verify); a longer run adds WAL of small
 * records, slower to replay per segment. A run with other than 30 seconds is
 * recorded in results/wal-restore-<seconds>s.txt.
 *
 * usage: npx tsx bench/wal-restore.ts [seconds=30] [clients=4] [scale=10] [rounds=3]
 * BENCH_ONLY=regex runs cp and the matching variants; BENCH_PGSNAP=script starts pgsnap through a wrapper
 * in the +sh lines (to log slow-path calls); BENCH_DEBUG=1 keeps each restore's server and prefetcher logs
 * in /tmp.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readSegmentHeader } from '#domain/wal/file';
import { prepareDataDirectory } from '../agent/restore/prepare.ts';
import { currentSegment, waitArchived } from '../test/support/archiving.ts';
import { Cluster, chownTree, newestAvailableMajor, ownedDir } from '../test/support/cluster.ts';
import { balanceSum, pgbench } from '../test/support/pgbench.ts';
import { pgsnap } from '../test/support/pgsnap.ts';
import { type TestRepository, testRepository } from '../test/support/repository.ts';
import { LocalS3 } from '../test/support/s3.ts';
import { stopWalHelpers } from '../test/support/wal-helpers.ts';
import { loadAverage } from './lib/machine.ts';
import { printAndRecord } from './lib/report.ts';
import { median } from './lib/stats.ts';

const run = promisify(execFile);
const seconds = Number(process.argv[2] ?? 30);
const clients = Number(process.argv[3] ?? 4);
const scale = Number(process.argv[4] ?? 10);
const rounds = Number(process.argv[5] ?? 3);

/**
 * From the server log (its %m prefix): milliseconds from the start of archive
 * recovery to the first file in place, the part of a restore that a Node.js
 * start and the first fetch cost before any replay.
 */
function firstFileMs(log: string): number {
  const at = (event: string) => {
    const match = new RegExp(`^(\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3}) .*${event}`, 'm').exec(
      log,
    );
    if (!match) throw new Error(`the server log has no "${event}"`);
    return Date.parse(`${match[1]!.replace(' ', 'T')}Z`);
  };
  return at('restored log file') - at('starting archive recovery');
}

/** Pushes every file of a cp archive into a repository, as wal-push would have. */
async function fill(repo: TestRepository, archiveDir: string): Promise<void> {
  const repository = await repo.open();
  const files = readdirSync(archiveDir).sort();
  const first = readSegmentHeader(
    readFileSync(join(archiveDir, files.find((f) => /^[0-9A-F]{24}$/.test(f))!)),
  )!;
  const pin = await repository.pin(
    { systemIdentifier: first.systemIdentifier, walSegmentSize: first.segmentSize },
    'bench',
  );
  for (const file of files) await repository.pushWal(pin, file, readFileSync(join(archiveDir, file)));
  repository.close();
}

const s3 = await LocalS3.start();
const source = await Cluster.create();
const work = ownedDir(join(source.root, 'work'));
const repos = { file: testRepository('file', undefined, 'bench'), s3: testRepository('s3', s3, 'bench') };
try {
  const env = { ...process.env, ...source.env, PGSNAP_STATE_DIR: join(source.root, 'state') };
  await pgbench(source, ['-i', '-s', String(scale), '-q']);
  const begun = await pgsnap(['begin', '--label', 'bench', '--fast', '--json'], env);
  if (begun.code !== 0) throw new Error(begun.stderr);
  await run('cp', ['-a', source.dataDir, join(work, 'base')]);
  const ended = await pgsnap(['end', '--json'], env);
  if (ended.code !== 0) throw new Error(ended.stderr);
  const label = (ended.json!.artifacts as Array<{ name: string; content: string }>).find(
    (a) => a.name === 'backup_label',
  )!.content;
  await pgbench(source, ['-T', String(seconds), '-c', String(clients), '-j', '2', '-n']);
  const last = await currentSegment(source);
  await source.query('SELECT pg_switch_wal()');
  await waitArchived(source, last, { timeoutMs: 600_000, intervalMs: 50 });
  const expected = await balanceSum(source);
  source.stopSync('fast');
  const segments = readdirSync(source.archiveDir).filter((f) => /^[0-9A-F]{24}$/.test(f)).length;

  await fill(repos.file, source.archiveDir);
  await fill(repos.s3, source.archiveDir);

  const shellTakes = (repo: TestRepository) => (spool: string) =>
    repo.prefetchRestoreCommandLine({
      spool,
      prefetch: 8,
      ...(process.env.BENCH_PGSNAP ? { pgsnap: [process.env.BENCH_PGSNAP] } : {}),
    });
  const variants: Array<[string, (spool: string) => string]> = [
    ['cp from a directory', () => `cp ${source.archiveDir}/%f %p`],
    ['pgsnap file://', () => repos.file.restoreCommandLine()],
    [
      'pgsnap file:// --prefetch 8',
      (spool) => repos.file.restoreCommandLine(`--prefetch 8 --spool-dir ${spool}`),
    ],
    ['pgsnap file:// --prefetch 8 +sh', shellTakes(repos.file)],
    ['pgsnap s3 (local)', () => repos.s3.restoreCommandLine()],
    [
      'pgsnap s3 (local) --prefetch 8',
      (spool) => repos.s3.restoreCommandLine(`--prefetch 8 --spool-dir ${spool}`),
    ],
    ['pgsnap s3 (local) --prefetch 8 +sh', shellTakes(repos.s3)],
  ];
  /** Seconds per variant, one per round. */
  const results = new Map<string, number[]>();
  /** CPU the local S3 server used during each restore (ms): on the same two cores, which real S3 is not. */
  const serverCpu = new Map<string, number[]>();
  /** Milliseconds until the first file was in place (firstFileMs). */
  const firstFile = new Map<string, number[]>();
  const loadBefore = loadavg();
  // BENCH_ONLY=regex runs the floor and the matching variants only, for quick iterations.
  const only = process.env.BENCH_ONLY ? new RegExp(process.env.BENCH_ONLY) : undefined;
  const chosen = [...variants.entries()].filter(([index, [name]]) => index === 0 || !only || only.test(name));
  // Rounds interleave the variants, so that a slow spell of the machine falls on all of them alike.
  for (let round = 1; round <= rounds; round++) {
    for (const [index, [name, command]] of chosen) {
      process.stderr.write(`round ${round}/${rounds}: ${name}...\n`);
      const root = ownedDir(join(work, `restore-${index}`));
      await run('cp', ['-a', join(work, 'base'), join(root, 'data')]);
      const spool = ownedDir(join(root, 'spool'));
      prepareDataDirectory({
        pgdata: join(root, 'data'),
        backupLabel: label,
        restoreCommand: command(spool),
      });
      chownTree(root);
      const started = performance.now();
      const serverCpuBefore = s3.cpuMs() ?? 0;
      // BENCH_DEBUG: how many prefetched segments wait in the spool, every 20 ms (is recovery waiting for them?).
      const spoolTrace: number[] = [];
      const tracer = process.env.BENCH_DEBUG
        ? setInterval(() => {
            try {
              spoolTrace.push(readdirSync(spool).filter((f) => /^[0-9A-F]{24}$/.test(f)).length);
            } catch {}
          }, 20)
        : undefined;
      const restored = await Cluster.fromCopy({
        major: source.major,
        root,
        dataDir: join(root, 'data'),
        archiveDir: ownedDir(join(root, 'archive')),
      });
      try {
        for (;;) {
          const [row] = await restored.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
          if (!row?.r) break;
          await new Promise((r) => setTimeout(r, 20));
        }
        results.set(name, [...(results.get(name) ?? []), (performance.now() - started) / 1000]);
        serverCpu.set(name, [...(serverCpu.get(name) ?? []), (s3.cpuMs() ?? 0) - serverCpuBefore]);
        firstFile.set(name, [...(firstFile.get(name) ?? []), firstFileMs(restored.log())]);
        if (tracer) {
          clearInterval(tracer);
          process.stderr.write(`  spooled segments every 20 ms: ${spoolTrace.join('')}\n`);
        }
        const sum = await balanceSum(restored);
        if (sum !== expected) throw new Error(`${name}: restored data differs (${sum} ≠ ${expected})`);
        if (process.env.BENCH_DEBUG) {
          writeFileSync(`/tmp/restore-${index}.log`, restored.log());
          await run('sh', ['-c', `cp ${spool}/prefetcher.log /tmp/prefetcher-${index}.log || true`]);
        }
      } finally {
        restored.stopSync('immediate');
        await stopWalHelpers(root);
        restored.destroy();
      }
    }
  }

  const floor = results.get(variants[0]![0])!;
  const floorFirst = firstFile.get(variants[0]![0])!;
  const lines = [
    `wal-restore: ${segments} segments of pgbench -T ${seconds} -c ${clients} (scale ${scale}), ` +
      `PostgreSQL ${newestAvailableMajor()}, ${rounds} round(s), ${new Date().toISOString()}`,
    `load average (1, 5, 15 min) before ${loadAverage(loadBefore)}, after ${loadAverage()}; 2 CPUs shared with other work`,
    '',
    // Each round's time against the same round's cp: the ratio of the medians would mix slow and quick spells.
    'restore_command                    median s  vs cp (median)  first file  the rest vs cp  S3 server CPU  vs cp in each round',
    ...[...results].map(([name, times]) => {
      const ratios = times.map((t, i) => t / floor[i]!);
      const cpu = `${median(serverCpu.get(name)!).toFixed(0)} ms`;
      const firsts = firstFile.get(name)!;
      const first = `${median(firsts).toFixed(0)} ms`;
      // The same round's times less the first file's wait: the pace once pgsnap has started.
      const rest = median(times.map((t, i) => (t - firsts[i]! / 1000) / (floor[i]! - floorFirst[i]! / 1000)));
      return `${name.padEnd(35)} ${median(times).toFixed(2).padStart(7)}  ${median(ratios).toFixed(2).padStart(13)}×  ${first.padStart(10)}  ${rest.toFixed(2).padStart(13)}×  ${cpu.padStart(13)}  ${ratios.map((r) => `${r.toFixed(2)}×`).join(' ')}`;
    }),
    '',
    'first file: from the start of archive recovery to the first file in place (median, server log);',
    'the rest vs cp: the restore less that wait, against the same of cp in the same round (median).',
    'S3 server CPU: what the local S3 server (s3rver, a Node.js process) used during the restore, on the',
    'same two cores as the recovery and pgsnap; a real S3 endpoint takes none of them.',
  ];
  // Another length of load makes other WAL (see the usage above), and BENCH_ONLY leaves variants out: either
  // run is recorded beside the default one, not over it.
  const resultsFile =
    `wal-restore${seconds === 30 ? '' : `-${seconds}s`}` +
    `${process.env.BENCH_ONLY ? `-only-${process.env.BENCH_ONLY.replace(/[^a-z0-9]+/gi, '')}` : ''}.txt`;
  printAndRecord(resultsFile, lines);
} finally {
  for (const repo of Object.values(repos)) repo.destroy();
  source.destroy();
  rmSync(work, { recursive: true, force: true });
  await s3.destroy();
}
