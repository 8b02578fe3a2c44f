/**
 * The archive_command and restore_command lines that answer from the helpers'
 * spools in the shell (wal-commands.ts), as PostgreSQL runs them: under a
 * write load and through a restore, on file:// and S3, on PostgreSQL 15 and
 * on another major version; and what they must never do — vouch for a file
 * the pusher did not store, or swallow a failed push.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { prepareDataDirectory } from '../../agent/restore/prepare.ts';
import { isAlive, prefetcherLockName } from '../../agent/wal/daemon.ts';
import {
  archiveCommandLine,
  commandLimitBefore16,
  confQuote,
  expandedLength,
  okStatusName,
  plainRestoreCommandLine,
  restoreCommandLine,
  statusKey,
} from '../../agent/wal/shell-lines.ts';
import { copyBackup } from '../support/backup-mode.ts';
import { asPostgres, type Cluster, chownTree, clientBin, type Major, ownedDir } from '../support/cluster.ts';
import {
  clusterForTest,
  repositoryForTest,
  restoredClusterForTest,
  tempDirForTest,
} from '../support/fixtures.ts';
import { pgsnap, pgsnapBin } from '../support/pgsnap.ts';
import { type BackendKind, storedBackupLabel, type TestRepository } from '../support/repository.ts';
import { LocalS3 } from '../support/s3.ts';
import { prefetchedWhenStopped, stopWalHelpers } from '../support/wal-helpers.ts';

const run = promisify(execFile);

let s3: LocalS3;
beforeAll(async () => {
  s3 = await LocalS3.start();
});
afterAll(async () => {
  await s3?.destroy();
});

async function pgbench(cluster: Cluster, args: string[]): Promise<void> {
  await run(clientBin('pgbench') ?? 'pgbench', args, { env: { ...process.env, ...cluster.env } });
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  cluster?: Cluster,
  timeoutMs = 90_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${what}${cluster ? `; server log:\n${cluster.log().slice(-4000)}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function archiverStats(cluster: Cluster) {
  const [row] = await cluster.query<{
    archived: string;
    failed: string;
    last: string | null;
    lastFailed: string | null;
  }>(
    `SELECT archived_count::text AS archived, failed_count::text AS failed, last_archived_wal AS last,
            last_failed_wal AS "lastFailed" FROM pg_stat_archiver`,
  );
  return row!;
}

/** Switches to a new segment and waits until everything before it is archived; returns the last one. */
async function archiveEverything(cluster: Cluster): Promise<string> {
  // pg_switch_wal() does nothing on a segment with nothing in it.
  await cluster.query("SELECT pg_logical_emit_message(false, 'pgsnap-test', 'switch')");
  const [row] = await cluster.query<{ name: string }>(
    'SELECT pg_walfile_name(pg_current_wal_insert_lsn()) AS name',
  );
  await cluster.query('SELECT pg_switch_wal()');
  await waitArchivedThrough(cluster, row!.name, `${row!.name} archived`);
  return row!.name;
}

/** Waits until the archiver has archived `name` (and so everything before it). */
async function waitArchivedThrough(cluster: Cluster, name: string, what: string): Promise<void> {
  await waitFor(
    what,
    async () => {
      const stats = await archiverStats(cluster);
      return stats.last && stats.last >= name ? true : undefined;
    },
    cluster,
  );
}

/** Makes the server finish `count` segments with data in them; returns their names. */
async function switchSegments(cluster: Cluster, count: number): Promise<string[]> {
  const names: string[] = [];
  await cluster.query('CREATE TABLE IF NOT EXISTS filler (id serial, payload text)');
  for (let i = 0; i < count; i++) {
    await cluster.query('INSERT INTO filler (payload) SELECT md5(g::text) FROM generate_series(1, 2000) g');
    const [row] = await cluster.query<{ name: string }>(
      'SELECT pg_walfile_name(pg_current_wal_insert_lsn()) AS name',
    );
    await cluster.query('SELECT pg_switch_wal()');
    names.push(row!.name);
  }
  return names;
}

/** Sets archive_command to a shell line and makes the server use it. */
async function useArchiveCommand(cluster: Cluster, line: string): Promise<void> {
  cluster.configure({ archive_command: `'${line.replaceAll("'", "''")}'` });
  await cluster.query('SELECT pg_reload_conf()');
}

/** Every archived file decodes, verifies, and matches what pg_wal still holds of it. */
async function expectArchivedIntact(repo: TestRepository, cluster: Cluster, count: number): Promise<void> {
  const repository = await repo.open();
  try {
    const pin = await repository.requirePin();
    const stored = await repository.listWal();
    expect(stored.length).toBe(count);
    for (const { name } of stored) {
      const content = await repository.fetchWal(pin, name);
      const local = join(cluster.dataDir, 'pg_wal', name);
      if (existsSync(local)) expect(content!.equals(readFileSync(local))).toBe(true);
    }
  } finally {
    repository.close();
  }
}

/** The server log's lines from the archive_command's slow path (pgsnap wal-push). */
function pushComplaints(cluster: Cluster): string[] {
  return cluster.log().match(/pgsnap: .*/g) ?? [];
}

const roundTrips: Array<[BackendKind, Major]> = [
  ['file', 15],
  ['s3', 15],
  ['file', 17],
];

describe.each(roundTrips)('on a %s repository, PostgreSQL %i', (kind, major) => {
  it('archives a write load through the async fast path and restores it through the prefetch fast path', async () => {
    const repo = repositoryForTest(kind, s3);
    const { cluster: source, env: sourceEnv } = await clusterForTest({
      major,
      settings: { archive_command: "'/bin/false'" },
    });
    const spoolRoot = ownedDir(join(source.root, 'spool'));
    const line = repo.asyncArchiveCommandLine({ spoolRoot, pgdata: source.dataDir });
    // PostgreSQL 15 and older cut longer lines (the credentials of the local S3 server make this one long).
    expect(expandedLength(line)).toBeLessThanOrEqual(commandLimitBefore16);
    await useArchiveCommand(source, line);
    const env = { ...sourceEnv, ...repo.env };
    await pgbench(source, ['-i', '-s', '2', '-q']);
    const { backupId, backupDir } = await copyBackup(source, env, { label: 'fast path', flags: repo.flags });
    await pgbench(source, ['-t', '2000', '-c', '4', '-j', '2']);
    // A few more segments, so that recovery needs more than the first restore_command fetches itself
    // (its own segment and two alongside) and the prefetcher has to deliver some: the load alone wrote
    // about four, and on a busy machine the prefetcher could start too late to place any.
    for (let i = 0; i < 6; i++) {
      await source.query('UPDATE pgbench_branches SET bbalance = bbalance + 1 WHERE bid = 1');
      await source.query('SELECT pg_switch_wal()');
    }
    await archiveEverything(source);
    const stats = await archiverStats(source);
    expect(Number(stats.failed), pushComplaints(source).join('\n')).toBe(0);
    await expectArchivedIntact(repo, source, Number(stats.archived));
    // The backup history file is archived like a segment and fetched back byte for byte.
    const backupHistory = readdirSync(join(source.dataDir, 'pg_wal')).find((f) => f.endsWith('.backup'));
    expect(backupHistory).toBeDefined();
    const fetchedHistory = join(backupDir, backupHistory!);
    const fetched = await pgsnap(['wal-fetch', backupHistory!, fetchedHistory, ...repo.flags], repo.env);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(readFileSync(fetchedHistory)).toEqual(
      readFileSync(join(source.dataDir, 'pg_wal', backupHistory!)),
    );
    const [expected] = await source.query<{ sum: string }>(
      'SELECT sum(abalance)::text AS sum FROM pgbench_accounts',
    );
    source.stopSync('fast');

    const pgdata = join(backupDir, 'data');
    if (kind === 'file') {
      // pgsnap restore writes the fast-path restore_command itself (the S3 credentials of the local
      // server would not reach it: there the test writes the same line with them).
      const restoredCmd = await pgsnap(
        ['restore', '--backup-id', backupId, '--pgdata', pgdata, '--prefetch', '4', '--json', ...repo.flags],
        env,
      );
      expect(restoredCmd.code, restoredCmd.stderr).toBe(0);
      expect(restoredCmd.json!.restoreCommand).toContain('mv -f "$f" %p');
    } else {
      prepareDataDirectory({
        pgdata,
        backupLabel: await storedBackupLabel(repo, backupId),
        restoreCommand: repo.prefetchRestoreCommandLine({
          spool: join(pgdata, 'pg_wal', 'pgsnap-prefetch'),
          prefetch: 4,
        }),
      });
    }
    chownTree(backupDir);
    const restored = await restoredClusterForTest({
      major,
      root: backupDir,
      dataDir: pgdata,
      archiveDir: ownedDir(join(backupDir, 'archive')),
    });
    await restored.waitForPromotion();
    const [sum] = await restored.query<{ sum: string }>(
      'SELECT sum(abalance)::text AS sum FROM pgbench_accounts',
    );
    expect(sum!.sum).toBe(expected!.sum);
    // Segments were taken from the spool, fetched ahead by the prefetcher.
    const spool = join(pgdata, 'pg_wal', 'pgsnap-prefetch');
    restored.stopSync('fast');
    expect(await prefetchedWhenStopped(spool)).toBeGreaterThan(0);
    expect(readdirSync(spool).filter((f) => /^[0-9A-F]{24}|\.missing$/.test(f))).toEqual([]);
  });
});

it('archives the .history and .partial files of a promotion, and a later restore follows that timeline from the repository', async () => {
  const repo = repositoryForTest('file');
  const { cluster: source, env } = await clusterForTest({ settings: { archive_command: "'/bin/false'" } });
  const spoolRoot = ownedDir(join(source.root, 'spool'));
  await useArchiveCommand(source, repo.asyncArchiveCommandLine({ spoolRoot, pgdata: source.dataDir }));
  await pgbench(source, ['-i', '-s', '1', '-q']);
  const { backupId, backupDir } = await copyBackup(source, env, {
    label: 'timelines',
    flags: repo.flags,
    copies: ['a', 'b'],
  });
  await pgbench(source, ['-t', '500', '-c', '2']);
  await archiveEverything(source);
  // WAL only in the source's pg_wal, never archived: a copy that replays it and is promoted archives
  // that last segment of timeline 1 as .partial (a segment restored from the archive is not).
  await pgbench(source, ['-t', '200', '-c', '2']);
  const [current] = await source.query<{ name: string }>(
    'SELECT pg_walfile_name(pg_current_wal_insert_lsn()) AS name',
  );
  source.stopSync('immediate'); // a clean shutdown would switch to a new segment and archive this one

  const restore = async (copy: string, extra: string[]) => {
    const pgdata = join(backupDir, copy);
    const prepared = await pgsnap(
      ['restore', '--backup-id', backupId, '--pgdata', pgdata, '--prefetch', '4', ...extra, ...repo.flags],
      env,
    );
    expect(prepared.code, prepared.stderr).toBe(0);
    return pgdata;
  };
  // A: restored, promoted to timeline 2, archiving on into the same repository.
  const pgdataA = await restore('a', ['--keep-archiving']);
  await run('cp', [join(source.dataDir, 'pg_wal', current!.name), join(pgdataA, 'pg_wal')]);
  chownTree(backupDir);
  const a = await restoredClusterForTest({
    major: source.major,
    root: backupDir,
    dataDir: pgdataA,
    archiveDir: ownedDir(join(backupDir, 'archive-a')),
    // The same spool as the source's (same system identifier): a restored copy reusing it.
    settings: { archive_command: confQuote(repo.asyncArchiveCommandLine({ spoolRoot, pgdata: pgdataA })) },
  });
  await a.waitForPromotion();
  await a.query('CREATE TABLE after_promotion AS SELECT g AS id FROM generate_series(1, 1234) g');
  await archiveEverything(a);
  const walA = join(pgdataA, 'pg_wal');
  expect(existsSync(join(walA, '00000002.history'))).toBe(true);
  // The promotion archives the last segment of timeline 1 as .partial (pg_wal may already have dropped it).
  const partial = await waitFor(
    'the .partial and .history archived',
    async () => {
      const repository = await repo.open();
      const names = (await repository.listWal()).map((w) => w.name);
      repository.close();
      return names.includes('00000002.history') ? names.find((n) => n.endsWith('.partial')) : undefined;
    },
    a,
  );
  for (const name of ['00000002.history', partial]) {
    const target = join(backupDir, `fetched-${name}`);
    const fetched = await pgsnap(['wal-fetch', name, target, ...repo.flags], repo.env);
    expect(fetched.code, fetched.stderr).toBe(0);
    if (existsSync(join(walA, name)))
      expect(readFileSync(target).equals(readFileSync(join(walA, name)))).toBe(true);
    else expect(readFileSync(target).length).toBe(16 * 1024 * 1024);
  }
  a.stopSync('fast');

  // B: the same backup, told to follow the newest timeline: it fetches 00000002.history from the
  // repository and replays A's timeline.
  const pgdataB = await restore('b', []);
  writeFileSync(join(pgdataB, 'postgresql.auto.conf'), "recovery_target_timeline = 'latest'\n", {
    flag: 'a',
  });
  chownTree(backupDir);
  const b = await restoredClusterForTest({
    major: source.major,
    root: backupDir,
    dataDir: pgdataB,
    archiveDir: ownedDir(join(backupDir, 'archive-b')),
  });
  await b.waitForPromotion();
  const [row] = await b.query<{ n: string }>('SELECT count(*)::text AS n FROM after_promotion');
  expect(row!.n).toBe('1234');
  expect(b.log()).toMatch(/restored log file "00000002.history" from archive/);
});

describe('the archive_command fast path', () => {
  it('archives, by the shell alone, every file the pusher stored', async () => {
    const repo = repositoryForTest('file');
    const { cluster } = await clusterForTest({ settings: { archive_command: "'/bin/false'" } });
    const spoolRoot = ownedDir(join(cluster.root, 'spool'));
    const segments = await switchSegments(cluster, 3);
    // The pusher, started by hand as PostgreSQL would start it, stores every ready file.
    const started = asPostgres(process.execPath, [
      pgsnapBin,
      'wal-push',
      join(cluster.dataDir, 'pg_wal', segments[0]!),
      '--async',
      '--spool-dir',
      spoolRoot,
      '--pgdata',
      cluster.dataDir,
      ...repo.flags,
    ]);
    expect(started.status, started.stderr).toBe(0);
    const spool = join(spoolRoot, repo.cluster, readdirSync(join(spoolRoot, repo.cluster))[0]!);
    const ready = readdirSync(join(cluster.dataDir, 'pg_wal', 'archive_status'))
      .filter((f) => f.endsWith('.ready'))
      .map((f) => f.slice(0, -'.ready'.length));
    expect(ready).toEqual(expect.arrayContaining(segments));
    for (const name of ready) {
      const ok = okStatusName(name, statusKey(join(cluster.dataDir, 'pg_wal', name)));
      await waitFor(ok, async () => (existsSync(join(spool, ok)) ? true : undefined));
    }
    // With pgsnap replaced by a command that fails and says so, only the shell can report success. (Not
    // counted in pg_stat_archiver: the archiver may still be running the /bin/false of before the reload.)
    // (It prints "ran: wal-push", which the command line in the log, holding "ran: $0", does not contain.)
    const standIn = ['/bin/sh', '-c', 'echo "pgsnap stand-in ran: $0" >&2; exit 1'];
    await useArchiveCommand(
      cluster,
      repo.asyncArchiveCommandLine({ spoolRoot, pgdata: cluster.dataDir, pgsnap: standIn }),
    );
    await waitArchivedThrough(cluster, segments[2]!, 'the three segments archived');
    await expectArchivedIntact(repo, cluster, ready.length);
    expect(cluster.log()).not.toContain('pgsnap stand-in ran: wal-push');
  });

  it('does not trust an .ok written for another file of the same name: that file is refused, not reported archived', async () => {
    const repo = repositoryForTest('file');
    const { cluster } = await clusterForTest({ settings: { archive_command: "'/bin/false'" } });
    const spoolRoot = ownedDir(join(cluster.root, 'spool'));
    const [segment] = await switchSegments(cluster, 1);
    const path = join(cluster.dataDir, 'pg_wal', segment!);
    const pushed = asPostgres(process.execPath, [
      pgsnapBin,
      'wal-push',
      path,
      '--async',
      '--spool-dir',
      spoolRoot,
      '--pgdata',
      cluster.dataDir,
      ...repo.flags,
    ]);
    expect(pushed.status, pushed.stderr).toBe(0);
    const original = readFileSync(path);
    const spool = join(spoolRoot, repo.cluster, readdirSync(join(spoolRoot, repo.cluster))[0]!);
    const staleOk = okStatusName(segment!, statusKey(path));
    expect(existsSync(join(spool, staleOk))).toBe(true);
    await stopWalHelpers(spoolRoot);
    // The data directory changes under the spool (pg_rewind, a restored copy on the same host): a file of
    // the same name with other content, ready to archive, while the .ok of the first is still there.
    const altered = Buffer.from(original);
    altered[8192 * 4 + 100] = altered[8192 * 4 + 100]! ^ 0xff;
    writeFileSync(`${path}.new`, altered, { mode: 0o600 });
    chownTree(`${path}.new`);
    renameSync(`${path}.new`, path);
    await useArchiveCommand(cluster, repo.asyncArchiveCommandLine({ spoolRoot, pgdata: cluster.dataDir }));
    // pgsnap's refusal, not a failure counted in pg_stat_archiver: the archiver may still be running the
    // /bin/false of before the reload.
    await waitFor(
      'pgsnap to refuse the file',
      async () =>
        /already in the repository with different content/.test(pushComplaints(cluster).join('\n'))
          ? true
          : undefined,
      cluster,
    );
    const stats = await archiverStats(cluster);
    expect(stats.lastFailed).toBe(segment);
    expect(stats.last).not.toBe(segment);
    expect(existsSync(join(spool, staleOk))).toBe(false);
    // The repository still holds the first file, untouched.
    const repository = await repo.open();
    const stored = await repository.fetchWal(await repository.requirePin(), segment!);
    repository.close();
    expect(stored!.equals(original)).toBe(true);
  });

  it('fails while the pusher reports an error, and PostgreSQL retries until every segment is in', async () => {
    const repo = repositoryForTest('file');
    const { cluster } = await clusterForTest({ settings: { archive_command: "'/bin/false'" } });
    const walDir = join(repo.url.slice('file://'.length), repo.cluster, 'wal');
    // Registered after the cluster, so run before its cleanup: the WAL dir writable again on failure.
    onTestFinished(() => {
      if (existsSync(walDir)) chmodSync(walDir, 0o750);
    });
    const spoolRoot = ownedDir(join(cluster.root, 'spool'));
    await useArchiveCommand(cluster, repo.asyncArchiveCommandLine({ spoolRoot, pgdata: cluster.dataDir }));
    await switchSegments(cluster, 1);
    await archiveEverything(cluster);
    chmodSync(walDir, 0o555); // the server user can no longer store anything
    const during = await switchSegments(cluster, 3);
    await waitFor(
      'a failed archive_command',
      async () => (Number((await archiverStats(cluster)).failed) > 0 ? true : undefined),
      cluster,
    );
    expect(pushComplaints(cluster).join('\n')).toContain(`${during[0]} not archived yet: `);
    expect((await archiverStats(cluster)).last! < during[0]!).toBe(true);
    chmodSync(walDir, 0o750);
    const after = await switchSegments(cluster, 1); // wakes the archiver from its wait after failures
    await waitArchivedThrough(cluster, after[0]!, 'everything archived after the repair');
    const stats = await archiverStats(cluster);
    await expectArchivedIntact(repo, cluster, Number(stats.archived));
    const repository = await repo.open();
    const names = (await repository.listWal()).map((w) => w.name);
    repository.close();
    for (const segment of [...during, ...after]) expect(names).toContain(segment);
  });

  it('is printed by --print-command as PostgreSQL must read it, every value quoted', async () => {
    const spool = "/tmp/pgsnap it's % here";
    const url = 's3://bucket/pg?endpoint=http%3A%2F%2F127.0.0.1%3A9000&path-style=true';
    const printed = await pgsnap(
      [
        'wal-fetch',
        '--print-command',
        '--prefetch',
        '8',
        '--spool-dir',
        spool,
        '--repo',
        url,
        '--cluster',
        'orders-db',
      ],
      {},
    );
    expect(printed.code, printed.stderr).toBe(0);
    const line = restoreCommandLine({
      spool,
      url,
      cluster: 'orders-db',
      prefetch: 8,
      pgsnap: [process.execPath, pgsnapBin],
    });
    expect(printed.stdout).toBe(`restore_command = ${confQuote(line)}\n`);
    // What the shell receives once PostgreSQL replaced %f, %p and %%: the spool and the URL come through intact.
    const shell = line
      .replaceAll('%f', '000000010000000000000001')
      .replaceAll('%p', 'pg_wal/RECOVERYXLOG')
      .replaceAll('%%', '%');
    const echoed = execFileSync('sh', ['-c', `${shell.replace(/; p\(\) \{.*$/, '')}; echo "$s"`], {
      encoding: 'utf8',
    });
    expect(echoed.trim()).toBe(spool);
    expect(shell).toContain(`'${url}'`);
  });

  it('reports success in the shell only for the file whose status it finds', () => {
    const dir = tempDirForTest('pgsnap-fast-path-');
    const spool = join(dir, 'spool');
    execFileSync('mkdir', ['-p', '-m', '700', spool, join(dir, 'pg_wal')]);
    const segment = '000000010000000000000005';
    const path = join(dir, 'pg_wal', segment);
    writeFileSync(path, 'first');
    // The line as PostgreSQL runs it: %p, %f and %% replaced; pgsnap (the slow path) replaced by false.
    const line = archiveCommandLine({
      spool,
      spoolRoot: dir,
      url: 'file:///nonexistent',
      cluster: 'orders-db',
      parallel: 4,
      pgsnap: ['/bin/false'],
    });
    const archive = () => {
      const shell = line
        .replaceAll('%p', `pg_wal/${segment}`)
        .replaceAll('%f', segment)
        .replaceAll('%%', '%');
      try {
        execFileSync('sh', ['-c', shell], { cwd: dir, stdio: 'ignore' });
        return 0;
      } catch (error) {
        return (error as { status: number }).status;
      }
    };
    expect(archive()).not.toBe(0);
    writeFileSync(join(spool, `${segment}.ok`), ''); // keyed by name alone: not enough
    expect(archive()).not.toBe(0);
    writeFileSync(join(spool, okStatusName(segment, statusKey(path))), '');
    expect(archive()).toBe(0);
    writeFileSync(`${path}.new`, 'other');
    renameSync(`${path}.new`, path);
    expect(archive()).not.toBe(0);
  });
});

describe('the restore_command fast path', () => {
  it('starts pgsnap once: the first call answers as soon as its file is in place and stays on as the prefetcher', async () => {
    const repo = repositoryForTest('file');
    const segmentSize = 16 * 2 ** 20;
    const segments = [1, 2, 3, 4, 5].map((n) => `00000001000000000000000${n}`);
    const bytes = (i: number) => Buffer.alloc(segmentSize, `segment ${i} `);
    const repository = await repo.open();
    const pin = await repository.pin(
      { systemIdentifier: '7710631090410220509', walSegmentSize: segmentSize },
      'test',
    );
    for (const [i, name] of segments.entries()) await repository.pushWal(pin, name, bytes(i));
    repository.close();
    const dir = tempDirForTest('pgsnap-fast-path-');
    const spool = join(dir, 'spool');
    execFileSync('mkdir', ['-p', '-m', '700', spool, join(dir, 'pg_wal')]);
    const line = restoreCommandLine({
      spool,
      url: repo.url,
      cluster: repo.cluster,
      prefetch: 2,
      // Counts its starts: sh execs Node.js in its own place, so the prefetcher's pid is Node's.
      pgsnap: [
        'sh',
        '-c',
        'echo >> "$0.starts"; exec "$@"',
        join(dir, 'pgsnap'),
        process.execPath,
        pgsnapBin,
      ],
    });
    const starts = () => readFileSync(join(dir, 'pgsnap.starts'), 'utf8').split('\n').length - 1;
    // Run as PostgreSQL runs it: sh -c, stderr to the server log (a file), and done when sh exits.
    const restore = (name: string) =>
      new Promise<number>((done, fail) => {
        const log = openSync(join(dir, 'server.log'), 'a');
        const command = line
          .replaceAll('%p', 'pg_wal/RECOVERYXLOG')
          .replaceAll('%f', name)
          .replaceAll('%%', '%');
        const child = spawn('sh', ['-c', command], { cwd: dir, stdio: ['ignore', 'ignore', log] });
        closeSync(log);
        child.once('error', fail);
        child.once('exit', (code) => done(code ?? -1));
      });
    const prefetcher = () => {
      const pid = Number(readFileSync(join(spool, prefetcherLockName), 'utf8'));
      onTestFinished(() => {
        if (isAlive(pid)) process.kill(pid, 'SIGKILL');
      });
      return pid;
    };

    expect(await restore(segments[0]!)).toBe(0);
    expect(readFileSync(join(dir, 'pg_wal', 'RECOVERYXLOG')).equals(bytes(0))).toBe(true);
    // The shell has answered; the process that fetched the file is still there, as the prefetcher.
    const pid = prefetcher();
    expect(isAlive(pid)).toBe(true);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toEqual(
      expect.arrayContaining(['wal-fetch', segments[0], '--stay']),
    );
    // PostgreSQL asks for the next segment right after the answer: the shell waits for the prefetcher's fetch
    // of it, and does not start pgsnap a second time.
    expect(await restore(segments[1]!)).toBe(0);
    expect(readFileSync(join(dir, 'pg_wal', 'RECOVERYXLOG')).equals(bytes(1))).toBe(true);
    expect(prefetcher()).toBe(pid);
    expect(starts()).toBe(1);
    await waitFor('the next two segments in the spool', async () =>
      existsSync(join(spool, segments[2]!)) && existsSync(join(spool, segments[3]!)) ? true : undefined,
    );
    expect(existsSync(join(spool, segments[4]!))).toBe(false); // two ahead, as asked
    expect(await restore(segments[2]!)).toBe(0);
    expect(readFileSync(join(dir, 'pg_wal', 'RECOVERYXLOG')).equals(bytes(2))).toBe(true);
    expect(prefetcher()).toBe(pid); // answered from the spool, by the same prefetcher
    expect(starts()).toBe(1);
    // Stopped as PostgreSQL stops it (a signal to its startup process's group): it empties the spool.
    process.kill(pid, 'SIGTERM');
    expect(await prefetchedWhenStopped(spool)).toBeGreaterThanOrEqual(2);
    await waitFor('the prefetcher to exit', async () => (isAlive(pid) ? undefined : true));
    expect(readdirSync(spool).filter((f) => /^[0-9A-F]{24}/.test(f))).toEqual([]);
    expect(existsSync(join(spool, prefetcherLockName))).toBe(false);

    // A file the repository does not have: "not there" (1), and the call stays on as the prefetcher all the same.
    expect(await restore('00000002.history')).toBe(1);
    expect(isAlive(prefetcher())).toBe(true);
  });

  it('waits in the shell for a file the live prefetcher is fetching, and starts pgsnap only without one', async () => {
    const dir = tempDirForTest('pgsnap-fast-path-');
    const spool = join(dir, 'spool');
    execFileSync('mkdir', ['-p', '-m', '700', spool, join(dir, 'pg_wal')]);
    const segment = '000000010000000000000007';
    // pgsnap (the slow path) replaced by a command that says it ran: the answer must come from the spool.
    const line = restoreCommandLine({
      spool,
      url: 'file:///nonexistent',
      cluster: 'orders-db',
      prefetch: 8,
      pgsnap: ['sh', '-c', 'echo slow path >&2; exit 7', 'pgsnap'],
    });
    const restore = () => runRestoreLine(line, segment, `pg_wal/${segment}`, dir);

    // A live prefetcher (this test process) is fetching the file: the line waits, then takes it.
    writeFileSync(join(spool, prefetcherLockName), `${process.pid}\n`);
    writeFileSync(join(spool, `${segment}.fetching`), '');
    const waiting = restore();
    await new Promise((r) => setTimeout(r, 300));
    writeFileSync(join(spool, segment), 'segment content');
    rmSync(join(spool, `${segment}.fetching`));
    expect(await waiting).toEqual({ status: 0, stderr: '' });
    expect(readFileSync(join(dir, 'pg_wal', segment), 'utf8')).toBe('segment content');
    expect(existsSync(join(spool, segment))).toBe(false);

    // A .fetching left by a prefetcher that is gone is not waited for: pgsnap is started at once.
    writeFileSync(join(spool, `${segment}.fetching`), '');
    writeFileSync(join(spool, prefetcherLockName), '999999999\n');
    // (A stand-in that gives no answer on descriptor 3: recovery stops, as below.)
    expect(await restore()).toEqual({
      status: 128,
      stderr: expect.stringMatching(/^slow path\n(.|\n)*slow path\npgsnap wal-fetch: exit 7\n$/),
    });
  });

  it('stops recovery when Node.js cannot run pgsnap, whose exit status PostgreSQL would read as "not there"', async () => {
    const repo = repositoryForTest('file');
    const repository = await repo.open();
    const segmentSize = 16 * 2 ** 20;
    const pin = await repository.pin(
      { systemIdentifier: '7710631090410220509', walSegmentSize: segmentSize },
      'test',
    );
    const segment = '000000010000000000000001';
    await repository.pushWal(pin, segment, Buffer.alloc(segmentSize, 'segment 1 '));
    repository.close();
    const dir = tempDirForTest('pgsnap-fast-path-');
    const spool = join(dir, 'spool');
    execFileSync('mkdir', ['-p', '-m', '700', spool, join(dir, 'pg_wal')]);
    const lineFor = (pgsnapCommand: string[]) =>
      restoreCommandLine({ spool, url: repo.url, cluster: repo.cluster, prefetch: 2, pgsnap: pgsnapCommand });
    const restore = (line: string, name: string, env?: NodeJS.ProcessEnv) =>
      runRestoreLine(line, name, 'pg_wal/RECOVERYXLOG', dir, env);

    // The install moved away under a recovery: Node.js exits 1, the status of "not there".
    const moved = lineFor([process.execPath, join(dir, 'gone', 'pgsnap.mjs')]);
    const answer = await restore(moved, segment);
    expect(answer.status).toBe(128);
    expect(answer.stderr).toContain('Cannot find module');
    expect(answer.stderr).toContain('pgsnap wal-fetch: exit 1');
    expect(existsSync(join(dir, 'pg_wal', 'RECOVERYXLOG'))).toBe(false);

    // A bad NODE_OPTIONS in the server's environment: Node.js exits 9.
    const line = lineFor([process.execPath, pgsnapBin]);
    const badOptions = await restore(line, segment, { NODE_OPTIONS: '--no-such-option' });
    expect(badOptions.status).toBe(128);
    expect(badOptions.stderr).toContain('pgsnap wal-fetch: exit 9');

    // pgsnap in the foreground (a live prefetcher that has not got the file): its answers pass through.
    writeFileSync(join(spool, prefetcherLockName), `${process.pid}\n`);
    expect(await restore(line, segment)).toEqual({ status: 0, stderr: '' });
    expect(
      readFileSync(join(dir, 'pg_wal', 'RECOVERYXLOG')).equals(Buffer.alloc(segmentSize, 'segment 1 ')),
    ).toBe(true);
    expect(await restore(line, '00000002.history')).toEqual({ status: 1, stderr: '' });
    expect(readdirSync(spool)).not.toContain('prefetcher.log'); // in the foreground: no prefetcher was started

    // The line without prefetch (what pgsnap restore writes by default) reads pgsnap's answer the same way.
    const plain = (pgsnapCommand: string[]) =>
      plainRestoreCommandLine({ url: repo.url, cluster: repo.cluster, pgsnap: pgsnapCommand });
    rmSync(join(dir, 'pg_wal', 'RECOVERYXLOG'));
    expect(await restore(plain([process.execPath, join(dir, 'gone', 'pgsnap.mjs')]), segment)).toEqual({
      status: 128,
      stderr: expect.stringContaining('pgsnap wal-fetch: exit 1'),
    });
    expect(existsSync(join(dir, 'pg_wal', 'RECOVERYXLOG'))).toBe(false);
    expect(await restore(plain([process.execPath, pgsnapBin]), segment)).toEqual({ status: 0, stderr: '' });
    expect(existsSync(join(dir, 'pg_wal', 'RECOVERYXLOG'))).toBe(true);
    expect(await restore(plain([process.execPath, pgsnapBin]), '00000002.history')).toEqual({
      status: 1,
      stderr: '',
    });
  });
});

/** Runs a restore_command line as PostgreSQL does (sh -c, in the data directory) for one file. */
function runRestoreLine(
  line: string,
  name: string,
  path: string,
  cwd: string,
  env?: NodeJS.ProcessEnv,
): Promise<{ status: number; stderr: string }> {
  const command = line.replaceAll('%p', path).replaceAll('%f', name).replaceAll('%%', '%');
  return run('sh', ['-c', command], { cwd, env: { ...process.env, ...env } }).then(
    ({ stderr }) => ({ status: 0, stderr }),
    (error: { code: number; stderr: string }) => ({ status: error.code, stderr: error.stderr }),
  );
}
