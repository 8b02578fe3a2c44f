/**
 * The archive_command and restore_command lines that answer from the helpers'
 * spools in the shell (agent/wal/shell-lines.ts), as PostgreSQL runs them:
 * under a write load and through a restore, on file:// and S3, on PostgreSQL
 * 15 and on another major version; and the restore_command line alone, as
 * recovery calls it file by file. What the archive_command line alone must
 * and must never do is in wal-fast-path-archive.test.ts.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { prepareDataDirectory } from '../../agent/restore/prepare.ts';
import { isAlive, prefetcherLockName } from '../../agent/wal/daemon.ts';
import {
  commandLimitBefore16,
  expandedLength,
  plainRestoreCommandLine,
  restoreCommandLine,
} from '../../agent/wal/shell-lines.ts';
import { expectArchivedIntact } from '../support/archived-wal.ts';
import { archiveEverything, archiverStats, pushComplaints, useArchiveCommand } from '../support/archiving.ts';
import { copyBackup } from '../support/backup-mode.ts';
import { chownTree, type Major, ownedDir } from '../support/cluster.ts';
import {
  clusterForTest,
  repositoryForTest,
  restoredClusterForTest,
  tempDirForTest,
} from '../support/fixtures.ts';
import { balanceSum, pgbench } from '../support/pgbench.ts';
import { pgsnap, pgsnapBin } from '../support/pgsnap.ts';
import { type BackendKind, storedBackupLabel } from '../support/repository.ts';
import { LocalS3 } from '../support/s3.ts';
import { waitFor } from '../support/wait.ts';
import { prefetchedWhenStopped } from '../support/wal-helpers.ts';

const run = promisify(execFile);

let s3: LocalS3;
beforeAll(async () => {
  s3 = await LocalS3.start();
});
afterAll(async () => {
  await s3?.destroy();
});

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
    expect(stats.failed, pushComplaints(source).join('\n')).toBe(0);
    await expectArchivedIntact(repo, source, stats.archived);
    // The backup history file is archived like a segment and fetched back byte for byte.
    const backupHistory = readdirSync(join(source.dataDir, 'pg_wal')).find((f) => f.endsWith('.backup'));
    expect(backupHistory).toBeDefined();
    const fetchedHistory = join(backupDir, backupHistory!);
    const fetched = await pgsnap(['wal-fetch', backupHistory!, fetchedHistory, ...repo.flags], repo.env);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(readFileSync(fetchedHistory)).toEqual(
      readFileSync(join(source.dataDir, 'pg_wal', backupHistory!)),
    );
    const expected = await balanceSum(source);
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
    expect(await balanceSum(restored)).toBe(expected);
    // Segments were taken from the spool, fetched ahead by the prefetcher.
    const spool = join(pgdata, 'pg_wal', 'pgsnap-prefetch');
    restored.stopSync('fast');
    expect(await prefetchedWhenStopped(spool)).toBeGreaterThan(0);
    expect(readdirSync(spool).filter((f) => /^[0-9A-F]{24}|\.missing$/.test(f))).toEqual([]);
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
