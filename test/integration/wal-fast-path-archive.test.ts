/**
 * The archive_command line that answers from the pusher's spool in the shell
 * (agent/wal/shell-lines.ts), as PostgreSQL runs it: the .history and .partial
 * files of a promotion; and what it must never do — vouch for a file the
 * pusher did not store, or swallow a failed push. Its round trips under a
 * write load, with the restore_command line, are in
 * wal-fast-path-restore.test.ts.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  archiveCommandLine,
  confQuote,
  okStatusName,
  restoreCommandLine,
  statusKey,
} from '../../agent/wal/shell-lines.ts';
import { expectArchivedIntact } from '../support/archived-wal.ts';
import {
  archiveEverything,
  archiverStats,
  currentSegment,
  pushComplaints,
  switchSegments,
  useArchiveCommand,
  waitArchived,
} from '../support/archiving.ts';
import { copyBackup } from '../support/backup-mode.ts';
import { asPostgres, type Cluster, chownTree, ownedDir } from '../support/cluster.ts';
import {
  clusterForTest,
  repositoryForTest,
  restoredClusterForTest,
  tempDirForTest,
} from '../support/fixtures.ts';
import { pgbench } from '../support/pgbench.ts';
import { pgsnap, pgsnapBin } from '../support/pgsnap.ts';
import type { TestRepository } from '../support/repository.ts';
import { waitFor } from '../support/wait.ts';
import { stopWalHelpers } from '../support/wal-helpers.ts';

const run = promisify(execFile);

/**
 * `wal-push --async` for one file, run as the server user the way
 * archive_command runs it, so that the pusher starts; returns the spool it
 * answers from.
 */
function pushAsyncByHand(cluster: Cluster, repo: TestRepository, spoolRoot: string, path: string): string {
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
  return join(spoolRoot, repo.cluster, readdirSync(join(spoolRoot, repo.cluster))[0]!);
}

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
  const current = await currentSegment(source);
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
  await run('cp', [join(source.dataDir, 'pg_wal', current), join(pgdataA, 'pg_wal')]);
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
    { cluster: a },
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
    const spool = pushAsyncByHand(cluster, repo, spoolRoot, join(cluster.dataDir, 'pg_wal', segments[0]!));
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
    await waitArchived(cluster, segments[2]!, { what: 'the three segments archived' });
    await expectArchivedIntact(repo, cluster, ready.length);
    expect(cluster.log()).not.toContain('pgsnap stand-in ran: wal-push');
  });

  it('does not trust an .ok written for another file of the same name: that file is refused, not reported archived', async () => {
    const repo = repositoryForTest('file');
    const { cluster } = await clusterForTest({ settings: { archive_command: "'/bin/false'" } });
    const spoolRoot = ownedDir(join(cluster.root, 'spool'));
    const [segment] = await switchSegments(cluster, 1);
    const path = join(cluster.dataDir, 'pg_wal', segment!);
    const spool = pushAsyncByHand(cluster, repo, spoolRoot, path);
    const original = readFileSync(path);
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
      { cluster },
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
      async () => ((await archiverStats(cluster)).failed > 0 ? true : undefined),
      { cluster },
    );
    expect(pushComplaints(cluster).join('\n')).toContain(`${during[0]} not archived yet: `);
    expect((await archiverStats(cluster)).last! < during[0]!).toBe(true);
    chmodSync(walDir, 0o750);
    const after = await switchSegments(cluster, 1); // wakes the archiver from its wait after failures
    await waitArchived(cluster, after[0]!, { what: 'everything archived after the repair' });
    const stats = await archiverStats(cluster);
    await expectArchivedIntact(repo, cluster, stats.archived);
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

  it('does not trust an .ok in a spool another user owns, as the restore line does not: the file goes to pgsnap', () => {
    const dir = tempDirForTest('pgsnap-fast-path-owner-');
    const spool = join(dir, 'spool');
    execFileSync('mkdir', ['-p', '-m', '700', spool, join(dir, 'pg_wal')]);
    const segment = '000000010000000000000007';
    const path = join(dir, 'pg_wal', segment);
    writeFileSync(path, 'segment');
    writeFileSync(join(spool, okStatusName(segment, statusKey(path))), '');
    const shell = archiveCommandLine({
      spool,
      spoolRoot: dir,
      url: 'file:///nonexistent',
      cluster: 'orders-db',
      pgsnap: ['/bin/false'],
    })
      .replaceAll('%p', `pg_wal/${segment}`)
      .replaceAll('%f', segment)
      .replaceAll('%%', '%');
    const archive = () => spawnSync('sh', ['-c', shell], { cwd: dir, stdio: 'ignore' }).status;
    expect(archive()).toBe(0);
    // Someone else's spool (here nobody's), with the very status the pusher would write: not believed.
    chownSync(spool, 65534, 65534);
    expect(archive()).not.toBe(0);
  });
});
