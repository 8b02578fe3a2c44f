/**
 * The backup session under failure, against real PostgreSQL 15: begin's
 * process group killed, the holder killed, the server restarted, the maximum
 * duration passing, an abort, a second begin. After each, what an operator
 * checks: the exit code, a message that says what to do, `status`, and that
 * the server is not left in backup mode.
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  archivingGate,
  type Begun,
  backupAbortedLogLine,
  begin,
  clusterForTest,
  expectNotInBackup,
  pgsnapSessions,
  statusOf,
} from '../support/backup-mode.ts';
import { pgsnap, pgsnapBin } from '../support/pgsnap.ts';
import { isRunning, spawnWatched } from '../support/processes.ts';

describe('the backup session', () => {
  it("survives begin's whole process group being killed right after begin returns, and end then succeeds", async () => {
    const { cluster, env } = await clusterForTest();
    // What SSM Run Command or a CI runner does: the command returns, its process group is killed.
    const script = `"${process.execPath}" "${pgsnapBin}" begin --label 'group killed' --fast --json; echo "begin exited $?"; sleep 60`;
    const group = spawnWatched('sh', ['-c', script], env, { group: true });
    await group.waitFor('begin exited');
    process.kill(-group.child.pid!, 'SIGKILL');
    await group.exited;

    const output = group.stdout();
    expect(output).toContain('begin exited 0');
    const begun = JSON.parse(output.slice(0, output.indexOf('begin exited'))) as Begun;
    expect(isRunning(begun.holderPid)).toBe(true);
    expect(await statusOf(env)).toMatchObject({
      inProgress: true,
      state: 'in-backup',
      backupId: begun.backupId,
      label: 'group killed',
      holderPid: begun.holderPid,
      serverPid: begun.serverPid,
    });
    expect(await pgsnapSessions(cluster)).toEqual([
      { pid: begun.serverPid, app: `pgsnap:${begun.backupId}` },
    ]);

    const ended = await pgsnap(['end', '--json'], env);
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.json).toMatchObject({ backupId: begun.backupId, startLsn: begun.startLsn });
    await expectNotInBackup(cluster, env);
  });

  it('is lost when the holder is SIGKILLed: the server leaves backup mode, status shows none, end says the backup is not valid', async () => {
    const { cluster, env } = await clusterForTest();
    const begun = await begin(env, '--label', 'holder killed');

    process.kill(begun.holderPid, 'SIGKILL');
    await expect.poll(() => isRunning(begun.holderPid)).toBe(false);

    expect(await statusOf(env)).toMatchObject({
      inProgress: false,
      last: { backupId: begun.backupId, outcome: 'lost', reason: expect.stringContaining('killed') },
    });
    const ended = await pgsnap(['end'], env);
    expect(ended.code).toBe(1);
    expect(ended.stderr).toContain(`backup ${begun.backupId} is not valid`);
    expect(ended.stderr).toContain('Take a new backup with pgsnap begin');
    await expectNotInBackup(cluster, env, { abortLogged: true });
  });

  it('is lost when the server restarts in immediate mode: end fails clearly, the server restarts with no manual step', async () => {
    const { cluster, env } = await clusterForTest();
    const begun = await begin(env, '--label', 'server restarted');

    cluster.stopSync('immediate');
    cluster.start();

    // Non-exclusive backups write no backup_label into PGDATA, so crash recovery needed nothing from anyone.
    expect(existsSync(join(cluster.dataDir, 'backup_label'))).toBe(false);
    expect(await cluster.query('SELECT 1 AS up')).toEqual([{ up: 1 }]);
    await expect.poll(() => isRunning(begun.holderPid)).toBe(false);

    const ended = await pgsnap(['end'], env);
    expect(ended.code).toBe(1);
    expect(ended.stderr).toContain(`backup ${begun.backupId} is not valid`);
    expect(ended.stderr).toMatch(/server restart|session (closed|failed)/);
    expect(await statusOf(env)).toMatchObject({
      inProgress: false,
      last: { backupId: begun.backupId, outcome: 'lost' },
    });
    await expectNotInBackup(cluster, env);
  });

  it('expires after --max-duration: status reports it, a later end fails saying so, the server leaves backup mode', async () => {
    const { cluster, env } = await clusterForTest();
    const begun = await begin(env, '--label', 'too slow', '--max-duration', '2s');

    await expect
      .poll(async () => ((await statusOf(env)).last as { outcome?: string } | null)?.outcome, {
        timeout: 20_000,
        interval: 500,
      })
      .toBe('expired');
    expect(await statusOf(env)).toMatchObject({
      inProgress: false,
      last: {
        backupId: begun.backupId,
        outcome: 'expired',
        reason: 'the maximum backup duration of 2s passed',
      },
    });
    const ended = await pgsnap(['end'], env);
    expect(ended.code).toBe(1);
    expect(ended.stderr).toContain(`backup ${begun.backupId} is not valid`);
    expect(ended.stderr).toContain('maximum backup duration of 2s');
    await expectNotInBackup(cluster, env, { abortLogged: true });
  });

  it('ends with abort --reason, which status and a later end report', async () => {
    const { cluster, env } = await clusterForTest();
    const begun = await begin(env, '--label', 'aborted');

    const aborted = await pgsnap(['abort', '--reason', 'snapshot tool failed', '--json'], env);
    expect(aborted.code, aborted.stderr).toBe(0);
    expect(aborted.json).toEqual({ aborted: true, backupId: begun.backupId, reason: 'snapshot tool failed' });
    // abort returns once the holder has closed its session.
    expect(isRunning(begun.holderPid)).toBe(false);

    expect(await statusOf(env)).toMatchObject({
      inProgress: false,
      last: { backupId: begun.backupId, outcome: 'aborted', reason: 'snapshot tool failed' },
    });
    const ended = await pgsnap(['end'], env);
    expect(ended.code).toBe(1);
    expect(ended.stderr).toContain(`backup ${begun.backupId} is not valid`);
    expect(ended.stderr).toContain('snapshot tool failed');
    await expectNotInBackup(cluster, env, { abortLogged: true });
  });

  it('end waits for a failing archiver only up to its bound, keeps the artifacts, and a second end hands them over', async () => {
    const { cluster, env, stateDir } = await clusterForTest();
    const gate = archivingGate(cluster);
    const begun = await begin(env, '--label', 'archiver down');

    writeFileSync(gate, '');
    const timedOut = await pgsnap(['end', '--archive-timeout', '2s', '--json'], env);
    expect(timedOut.code).toBe(1);
    const { error } = timedOut.json as { error: { name: string; message: string } };
    expect(error.name).toBe('TimeoutError');
    expect(error.message).toMatch(
      /^[0-9A-F]{24}(, [0-9A-F]{24}\.[0-9A-F]{8}\.backup)? not archived after 2s/,
    );
    expect(error.message).toContain('run pgsnap end again to keep waiting (the artifacts are kept)');
    // Backup mode ended with pg_backup_stop; only the hand-over is pending.
    expect(await pgsnapSessions(cluster)).toEqual([]);
    expect(await statusOf(env)).toMatchObject({
      inProgress: true,
      state: 'stopped',
      backupId: begun.backupId,
      note: expect.stringContaining('run pgsnap end'),
    });

    rmSync(gate);
    // A reload wakes the archiver, which otherwise retries a failed segment only after a minute.
    await cluster.query('SELECT pg_reload_conf()');
    const output = join(stateDir, 'artifacts');
    const ended = await pgsnap(['end', '--archive-timeout', '60s', '--output', output, '--json'], env);
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.stderr).toContain(`resuming the end of backup ${begun.backupId}`);
    expect(ended.json).toMatchObject({ backupId: begun.backupId, startLsn: begun.startLsn });
    expect(readFileSync(join(output, 'backup_label'), 'utf8')).toContain('LABEL: archiver down\n');
    expect(cluster.log()).not.toContain(backupAbortedLogLine);
    await expectNotInBackup(cluster, env);
  });

  it('is one at a time: a second begin is refused naming the backup in progress, over an owner-only channel', async () => {
    const { cluster, env, stateDir } = await clusterForTest();
    const begun = await begin(env, '--label', 'first');

    const second = await pgsnap(['begin', '--label', 'second', '--json'], env);
    expect(second.code).toBe(3);
    const error = (second.json as { error: { name: string; message: string } }).error;
    expect(error.name).toBe('BackupInProgressError');
    expect(error.message).toContain(`backup ${begun.backupId} (label "first") is in progress`);
    expect(error.message).toContain('pgsnap end or pgsnap abort');
    expect(await pgsnapSessions(cluster)).toEqual([
      { pid: begun.serverPid, app: `pgsnap:${begun.backupId}` },
    ]);

    const [clusterDir, ...others] = readdirSync(stateDir);
    expect(others).toEqual([]);
    const mode = (path: string) => statSync(path).mode & 0o777;
    expect(mode(stateDir)).toBe(0o700);
    expect(mode(join(stateDir, clusterDir!))).toBe(0o700);
    const socket = join(stateDir, clusterDir!, 'holder.sock');
    expect(statSync(socket).isSocket()).toBe(true);
    expect(mode(socket)).toBe(0o600);

    const ended = await pgsnap(['end', '--json'], env);
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.json).toMatchObject({ backupId: begun.backupId, label: 'first' });
    await expectNotInBackup(cluster, env);
  });

  it('is one at a time when two begins race: one starts, the other is refused', async () => {
    const { cluster, env } = await clusterForTest();
    const results = await Promise.all([
      pgsnap(['begin', '--label', 'racer one', '--fast', '--json'], env),
      pgsnap(['begin', '--label', 'racer two', '--fast', '--json'], env),
    ]);
    expect(results.map((r) => r.code).sort(), results.map((r) => r.stderr).join('\n')).toEqual([0, 3]);
    const winner = results.find((r) => r.code === 0)!;
    const loser = results.find((r) => r.code === 3)!;
    expect(loser.stderr).toMatch(/in progress here|is starting right now/);
    expect(await pgsnapSessions(cluster)).toHaveLength(1);

    const ended = await pgsnap(['end', '--json'], env);
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.json).toMatchObject({ backupId: winner.json!.backupId });
    await expectNotInBackup(cluster, env);
  });
});
