/**
 * `pgsnap run` (the pre/post-script use) when the snapshot command succeeds,
 * fails or is interrupted, and `pgsnap preflight` on clusters where a backup
 * cannot be taken, against real PostgreSQL 15.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  backupAbortedLogLine,
  clusterForTest,
  expectNotInBackup,
  pgsnapSessions,
  statusOf,
} from '../support/backup-mode.ts';
import { pgsnap, pgsnapBin } from '../support/pgsnap.ts';
import { isRunning, spawnWatched } from '../support/processes.ts';

interface Finding {
  check: string;
  ok: boolean;
  severity: 'error' | 'warning';
  message: string;
}

describe('pgsnap run', () => {
  it('runs the command inside the backup, with PGSNAP_BACKUP_ID and PGSNAP_START_LSN, and writes the artifacts', async () => {
    const { cluster, env, stateDir } = await clusterForTest();
    const seen = join(stateDir, 'seen-by-command');
    const output = join(stateDir, 'artifacts');
    const script = `echo "$PGSNAP_BACKUP_ID $PGSNAP_START_LSN" > '${seen}'; echo 'snapshot taken'`;
    const result = await pgsnap(
      [
        'run',
        '--label',
        'nightly snapshot',
        '--fast',
        '--output',
        output,
        '--json',
        '--',
        'sh',
        '-c',
        script,
      ],
      env,
    );

    expect(result.code, result.stderr).toBe(0);
    // With --json the command's own output goes to stderr, so stdout stays one document.
    expect(result.stderr).toContain('snapshot taken');
    const ended = result.json as {
      backupId: string;
      startLsn: string;
      artifacts: Array<{ name: string; path: string; sha256: string }>;
    };
    expect(readFileSync(seen, 'utf8')).toBe(`${ended.backupId} ${ended.startLsn}\n`);
    expect(ended.artifacts.map((a) => a.name)).toEqual([
      'backup_label',
      expect.stringMatching(/^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/),
    ]);
    for (const artifact of ended.artifacts) {
      expect(artifact.path).toBe(join(output, artifact.name));
    }
    expect(readFileSync(join(output, 'backup_label'), 'utf8')).toContain('LABEL: nightly snapshot\n');
    expect(await statusOf(env)).toMatchObject({
      inProgress: false,
      last: { backupId: ended.backupId, outcome: 'completed' },
    });
    // pg_backup_stop ended it: the server never had to abort a backup.
    expect(cluster.log()).not.toContain(backupAbortedLogLine);
    await expectNotInBackup(cluster, env);
  });

  it('aborts the backup and exits non-zero when the command fails or cannot run', async () => {
    const { cluster, env } = await clusterForTest();
    const failed = await pgsnap(
      ['run', '--label', 'failing snapshot', '--fast', '--', 'sh', '-c', 'exit 7'],
      env,
    );
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/aborted: +\S+/);
    expect(failed.stdout).toContain('sh -c exit 7 failed (exit code 7)');
    expect(await statusOf(env)).toMatchObject({
      inProgress: false,
      last: { outcome: 'aborted', reason: 'sh -c exit 7 failed (exit code 7)' },
    });
    await expectNotInBackup(cluster, env, { abortLogged: true });

    const missing = await pgsnap(['run', '--fast', '--json', '--', '/nonexistent/snapshot-tool'], env);
    expect(missing.code).toBe(1);
    expect(missing.json).toMatchObject({
      aborted: true,
      reason: expect.stringContaining('/nonexistent/snapshot-tool could not run'),
    });
    await expectNotInBackup(cluster, env);
  });

  it.for([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)(
    'aborts the backup when it receives %s while the command runs, and stops what the command started',
    async ([signal, exitCode]) => {
      const { cluster, env } = await clusterForTest();
      const childPidFile = join(cluster.root, 'snapshot-child.pid');
      const run = spawnWatched(
        process.execPath,
        [
          pgsnapBin,
          'run',
          '--label',
          'interrupted',
          '--fast',
          '--',
          'sh',
          '-c',
          // A script that starts a child of its own, as snapshot tools do.
          `sleep 60 & echo $! > ${childPidFile}; echo snapshotting; wait`,
        ],
        env,
      );
      await run.waitFor('snapshotting');
      expect(await pgsnapSessions(cluster)).toHaveLength(1);
      run.child.kill(signal);

      expect(await run.exited).toEqual({ code: exitCode, signal: null });
      expect(run.stdout()).toContain(`interrupted by ${signal}`);
      expect(isRunning(Number(readFileSync(childPidFile, 'utf8')))).toBe(false);
      expect(await statusOf(env)).toMatchObject({
        inProgress: false,
        last: { outcome: 'aborted', reason: `interrupted by ${signal}` },
      });
      await expectNotInBackup(cluster, env, { abortLogged: true });
    },
  );
  it('aborts the backup when it receives SIGTERM while begin still waits for the checkpoint', async () => {
    // Without --fast, pg_backup_start waits for a checkpoint spread over 0.9 × 30s: begin is slow.
    const { cluster, env } = await clusterForTest({
      settings: { checkpoint_timeout: '30s', checkpoint_completion_target: '0.9' },
    });
    await cluster.query(
      "CREATE TABLE dirty AS SELECT n, repeat('x', 200) AS pad FROM generate_series(1, 100000) AS n",
    );
    const run = spawnWatched(
      process.execPath,
      [pgsnapBin, 'run', '--label', 'interrupted early', '--', 'sh', '-c', 'echo snapshotting'],
      env,
    );
    await expect
      .poll(
        async () =>
          (
            await cluster.query<{ query: string }>(
              "SELECT query FROM pg_stat_activity WHERE application_name LIKE 'pgsnap:%' AND state = 'active'",
            )
          ).map((r) => r.query),
        { timeout: 20_000 },
      )
      .toEqual([expect.stringContaining('pg_backup_start')]);
    run.child.kill('SIGTERM');

    expect(await run.exited).toEqual({ code: 143, signal: null });
    expect(run.stdout()).not.toContain('snapshotting');
    expect(run.stdout()).toContain('interrupted by SIGTERM');
    expect(await statusOf(env)).toMatchObject({ inProgress: false, last: { outcome: 'aborted' } });
    // The backend stops waiting for the checkpoint as soon as the holder is gone, before backup mode began.
    await expect
      .poll(() => cluster.log(), { timeout: 10_000 })
      .toMatch(/FATAL: +connection to client lost\n.*STATEMENT: +SELECT pg_backup_start/);
    await expectNotInBackup(cluster, env);
  });
});

describe('pgsnap preflight', () => {
  async function preflight(env: NodeJS.ProcessEnv) {
    const result = await pgsnap(['preflight', '--json'], env);
    const findings = (result.json?.findings ?? []) as Finding[];
    return { ...result, failed: findings.filter((f) => !f.ok) };
  }

  it('passes on a cluster that archives, as a superuser', async () => {
    const { env } = await clusterForTest();
    const result = await preflight(env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.json).toMatchObject({ ok: true, serverVersion: expect.stringMatching(/^15\./) });
    expect(result.failed).toEqual([]);
  });

  it('warns when a workload uses the database where pg_backup_start would keep its snapshot, naming the fix', async () => {
    const { cluster, env } = await clusterForTest();
    const workload = await cluster.client(); // connected to postgres, as pgsnap is by default here
    onTestFinished(() => workload.end());
    const shared = await preflight(env);
    expect(shared.code, shared.stderr).toBe(0); // a warning does not stop a backup
    expect(shared.failed).toEqual([
      {
        check: 'backup_database',
        ok: false,
        severity: 'warning',
        message: expect.stringMatching(
          /^1 other session uses database postgres, where pg_backup_start runs: .*\(about \d+ s, .*cannot prune or vacuum.*Set PGDATABASE for pgsnap to a database no workload uses \(CREATE DATABASE pgsnap\)$/,
        ),
      },
    ]);

    // The advice is enough: in a database of its own, nothing to warn about.
    await cluster.query('CREATE DATABASE pgsnap');
    const apart = await preflight({ ...env, PGDATABASE: 'pgsnap' });
    expect(apart.code, apart.stderr).toBe(0);
    expect(apart.failed).toEqual([]);
    expect(apart.json?.findings).toContainEqual(
      expect.objectContaining({
        check: 'backup_database',
        ok: true,
        message: expect.stringContaining('pgsnap'),
      }),
    );
  });

  it('fails (exit 3) with archive_mode off, saying to turn it on; begin is refused the same way', async () => {
    const { cluster, env } = await clusterForTest({ settings: { archive_mode: 'off' } });
    const result = await preflight(env);
    expect(result.code).toBe(3);
    expect(result.failed).toEqual([
      {
        check: 'archive_mode',
        ok: false,
        severity: 'error',
        message: 'archive_mode is off; set archive_mode = on and restart the server',
      },
      {
        check: 'archive_command',
        ok: false,
        severity: 'error',
        message: expect.stringContaining('archive_command is disabled because archive_mode is off'),
      },
    ]);
    const begun = await pgsnap(['begin', '--label', 'nightly'], env);
    expect(begun.code).toBe(3);
    expect(begun.stderr).toContain('cannot start a backup:\n  - archive_mode is off; set archive_mode = on');
    expect(await pgsnapSessions(cluster)).toEqual([]);
  });

  it('fails (exit 3) with wal_level minimal, saying to set it to replica', async () => {
    const { cluster, env } = await clusterForTest({
      settings: { wal_level: 'minimal', max_wal_senders: '0', archive_mode: 'off' },
    });
    const result = await preflight(env);
    expect(result.code).toBe(3);
    expect(result.failed.map((f) => f.check)).toEqual(['wal_level', 'archive_mode', 'archive_command']);
    expect(result.failed[0]!.message).toBe(
      'wal_level is minimal; set wal_level = replica in postgresql.conf and restart the server',
    );
    expect((await pgsnap(['begin', '--label', 'nightly'], env)).code).toBe(3);
    expect(await pgsnapSessions(cluster)).toEqual([]);
  });

  it('fails (exit 3) while archive_command fails, naming the segment that failed', async () => {
    const { cluster, env } = await clusterForTest({ settings: { archive_command: "'false'" } });
    await cluster.query('CREATE TABLE some_wal AS SELECT generate_series(1, 1000) AS n');
    await cluster.query('SELECT pg_switch_wal()');
    await expect
      .poll(
        async () =>
          (await cluster.query<{ n: string }>('SELECT failed_count AS n FROM pg_stat_archiver'))[0]!.n,
        {
          timeout: 20_000,
        },
      )
      .not.toBe('0');
    const [{ failedWal }] = (await cluster.query<{ failedWal: string }>(
      'SELECT last_failed_wal AS "failedWal" FROM pg_stat_archiver',
    )) as [{ failedWal: string }];
    expect(failedWal).toMatch(/^[0-9A-F]{24}$/);

    const result = await preflight(env);
    expect(result.code).toBe(3);
    expect(result.failed).toEqual([
      {
        check: 'archiver',
        ok: false,
        severity: 'error',
        message: expect.stringContaining(`the archiver is failing: ${failedWal} failed at`),
      },
    ]);
    expect(result.failed[0]!.message).toContain('fix archive_command (see the server log)');
    expect((await pgsnap(['begin', '--label', 'nightly'], env)).code).toBe(3);
    expect(await pgsnapSessions(cluster)).toEqual([]);
  });

  it('fails (exit 3) for a role without EXECUTE on the backup functions, with the GRANT that fixes it', async () => {
    const { cluster, env } = await clusterForTest();
    await cluster.query('CREATE ROLE snapshot_operator LOGIN');
    const operator = { ...env, PGUSER: 'snapshot_operator' };

    const refused = await preflight(operator);
    expect(refused.code).toBe(3);
    const grant =
      'GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean), pg_backup_stop(boolean) TO snapshot_operator';
    expect(refused.failed).toContainEqual({
      check: 'role',
      ok: false,
      severity: 'error',
      message: `role snapshot_operator may not run the backup functions: ${grant}`,
    });
    expect(refused.failed.filter((f) => f.severity === 'error')).toHaveLength(1);
    const begun = await pgsnap(['begin', '--label', 'nightly'], operator);
    expect(begun.code).toBe(3);
    expect(begun.stderr).toContain(grant);
    expect(await pgsnapSessions(cluster)).toEqual([]);

    // The advice is enough: after the GRANT the same role takes a backup.
    await cluster.query(grant);
    const granted = await preflight(operator);
    expect(granted.code, granted.stdout).toBe(0);
    await expectNotInBackup(cluster, operator);
  });
});
