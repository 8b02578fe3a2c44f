/**
 * Every repository call bounded: an S3 endpoint that accepts connections and
 * never answers (not a refused one, which fails at once) must not hang
 * archive_command, begin or doctor. Each finishes within its time limits
 * (set small here through PGSNAP_AWS_* and PGSNAP_DOCTOR_CHECK_TIMEOUT),
 * says what timed out, and leaves nothing behind: PostgreSQL counts a failed
 * archive and retries, the server is not left in backup mode. And a full
 * async spool is a failure PostgreSQL sees, not a wait.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { archiveEverything, archiverStats, currentSegment, useArchiveCommand } from '../support/archiving.ts';
import { backupAbortedLogLine, pgsnapSessions } from '../support/backup-mode.ts';
import { type Blackhole, blackholeForTest } from '../support/blackhole.ts';
import { ownedDir } from '../support/cluster.ts';
import { clusterForTest, repositoryForTest, tempDirForTest } from '../support/fixtures.ts';
import { pgsnap, pgsnapBin } from '../support/pgsnap.ts';

/** Credentials so that what fails is the endpoint, not the signing; and time limits of a second. */
const awsEnv = {
  AWS_ACCESS_KEY_ID: 'BLACKHOLE',
  AWS_SECRET_ACCESS_KEY: 'BLACKHOLE',
  AWS_REGION: 'us-east-1',
  PGSNAP_AWS_CONNECT_TIMEOUT: '1',
  PGSNAP_AWS_REQUEST_TIMEOUT: '1',
};

/** Unencoded, so that archive_command holds no % but its own. */
const repositoryUrl = (hole: Blackhole) =>
  `s3://pgsnap-test/repo?region=us-east-1&path-style=true&endpoint=${hole.endpoint}`;

const timedOut = (hole: Blackhole) => new RegExp(`timed out after 1 s talking to ${hole.endpoint}`);

describe('a blackholed S3 endpoint', () => {
  it('wal-push fails within its bound with the timeout named, and PostgreSQL counts the failure', async () => {
    const hole = await blackholeForTest();
    const { cluster } = await clusterForTest();
    const env = Object.entries(awsEnv).map(([k, v]) => `${k}=${v}`);
    await useArchiveCommand(
      cluster,
      `env ${env.join(' ')} ${process.execPath} ${pgsnapBin} wal-push %p --repo "${repositoryUrl(hole)}" --cluster bh`,
    );
    await cluster.query("SELECT pg_logical_emit_message(false, 'pgsnap-test', 'switch')");
    const segment = await currentSegment(cluster);
    await cluster.query('SELECT pg_switch_wal()');

    // What archive_command does, run by hand: the exit status PostgreSQL reads, and how long it took.
    const started = Date.now();
    const pushed = await pgsnap(
      [
        'wal-push',
        join(cluster.dataDir, 'pg_wal', segment),
        '--pgdata',
        cluster.dataDir,
        '--repo',
        repositoryUrl(hole),
        '--cluster',
        'bh',
      ],
      awsEnv,
      { timeoutMs: 60_000 },
    );
    const tookMs = Date.now() - started;
    expect(pushed.code, pushed.stderr).not.toBe(0);
    expect(pushed.stderr).toMatch(timedOut(hole));
    expect(pushed.stderr).toContain('PGSNAP_AWS_REQUEST_TIMEOUT');
    // Four attempts of a second each, and the SDK's back-off between them.
    expect(tookMs).toBeLessThan(20_000);
    expect(hole.accepted).toBeGreaterThan(0);

    await expect
      .poll(() => archiverStats(cluster), { timeout: 30_000, interval: 500 })
      .toMatchObject({ failed: expect.any(Number), lastFailed: segment });
    expect((await archiverStats(cluster)).failed).toBeGreaterThanOrEqual(1);
    expect(cluster.log()).toMatch(timedOut(hole));
  });

  it('begin that cannot record its backup aborts it: it fails within its bound and the server is not in backup mode', async () => {
    const hole = await blackholeForTest();
    const { cluster, env } = await clusterForTest();
    const started = Date.now();
    const begun = await pgsnap(
      [
        'begin',
        '--fast',
        '--json',
        '--label',
        'blackholed',
        '--repo',
        repositoryUrl(hole),
        '--cluster',
        'bh',
      ],
      { ...env, ...awsEnv },
      { timeoutMs: 90_000 },
    );
    expect(begun.code, begun.stderr).not.toBe(0);
    expect(begun.stderr).toMatch(timedOut(hole));
    expect(Date.now() - started).toBeLessThan(45_000);

    // The backup had started, and its session was closed: the server ended backup mode itself.
    await expect.poll(() => pgsnapSessions(cluster), { timeout: 10_000 }).toEqual([]);
    await expect.poll(() => cluster.log(), { timeout: 10_000 }).toContain(backupAbortedLogLine);
    const status = await pgsnap(['status', '--json', '--cluster', 'bh'], env);
    expect(status.json).toMatchObject({
      inProgress: false,
      last: {
        outcome: 'aborted',
        reason: expect.stringContaining('the repository did not record the backup'),
      },
    });
  });

  it('doctor prints each check as it runs, fails the one that times out naming its limit, and runs the rest', async () => {
    const hole = await blackholeForTest();
    const { cluster, env } = await clusterForTest();
    const started = Date.now();
    const result = await pgsnap(
      ['doctor', '--local', '--repo', repositoryUrl(hole), '--cluster', 'bh'],
      {
        ...env,
        AWS_ACCESS_KEY_ID: 'BLACKHOLE',
        AWS_SECRET_ACCESS_KEY: 'BLACKHOLE',
        AWS_REGION: 'us-east-1',
        PGSNAP_DOCTOR_CHECK_TIMEOUT: '3',
      },
      { timeoutMs: 60_000 },
    );
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(result.code, result.stderr).toBe(3);
    // Progress on stderr, in order: what ran before the silent repository, the repository, what ran after.
    const progress = result.stderr;
    const at = (text: string) => progress.indexOf(text);
    expect(at('ok    connection')).toBeGreaterThanOrEqual(0);
    expect(at('checking repository.reachable...')).toBeGreaterThan(at('ok    connection'));
    expect(progress).toMatch(
      /FAIL {2}repository\.reachable: .*no answer within 3 s.*PGSNAP_DOCTOR_CHECK_TIMEOUT/,
    );
    expect(at('checking clock...')).toBeGreaterThan(at('checking repository.reachable...'));
    expect(result.stdout).toMatch(/FAIL {2}repository\.reachable/);
    expect(result.stdout).toMatch(/ {2}clock: /);
    expect(result.stdout).toMatch(/ {2}spool: /);
    expect(cluster).toBeDefined();
  });
});

describe.skipIf(process.getuid?.() !== 0)('a full async spool (tmpfs, needs root)', () => {
  it('is reported to PostgreSQL as a failed archive, and leaves no temporary files', async () => {
    const spoolRoot = tempDirForTest('pgsnap-full-spool-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', spoolRoot]);
    onTestFinished(() => {
      spawnSync('umount', ['-l', spoolRoot]);
    });
    ownedDir(spoolRoot);
    const repo = repositoryForTest('file');
    const { cluster } = await clusterForTest({ settings: { archive_command: repo.archiveCommand() } });
    await useArchiveCommand(
      cluster,
      repo.asyncArchiveCommandLine({ spoolRoot, pgdata: cluster.dataDir, parallel: 2 }),
    );
    // The spool works while it has room.
    await archiveEverything(cluster, { timeoutMs: 60_000 });
    const before = (await archiverStats(cluster)).failed;

    // Filled up, as root; the pusher has no room left for its status or pid files.
    spawnSync('dd', ['if=/dev/zero', `of=${join(spoolRoot, 'filler')}`, 'bs=64k'], { stdio: 'ignore' });
    expect(() => writeFileSync(join(spoolRoot, 'one-more'), Buffer.alloc(4096))).toThrow(/ENOSPC/);

    await cluster.query("SELECT pg_logical_emit_message(false, 'pgsnap-test', 'full')");
    const segment = await currentSegment(cluster);
    await cluster.query('SELECT pg_switch_wal()');
    await expect
      .poll(async () => (await archiverStats(cluster)).failed, { timeout: 30_000, interval: 500 })
      .toBeGreaterThan(before);
    expect((await archiverStats(cluster)).lastFailed).toBe(segment);
    expect(cluster.log()).toContain('has no room (ENOSPC)');

    // Let PostgreSQL retry a few times: each try must clean up after itself.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const leftovers = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory()
          ? leftovers(join(dir, e.name))
          : /\.new-\d+$|^\.space-probe-|^\..*\.\d+$/.test(e.name)
            ? [join(dir, e.name)]
            : [],
      );
    expect(leftovers(spoolRoot)).toEqual([]);
  });
});
