/**
 * The resident agent service (`pgsnap agent`) holding backup sessions, against
 * real PostgreSQL 15: the guarantees of a holder process, kept by one
 * long-lived process for several clusters; and begin falling back to a holder
 * when no service runs.
 */
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startAgentService } from '../support/agent-service.ts';
import {
  archivingGate,
  backupAbortedLogLine,
  begin,
  clusterForTest,
  expectNotInBackup,
  pgsnapSessions,
  statusOf,
} from '../support/backup-mode.ts';
import { Cluster } from '../support/cluster.ts';
import { pgsnap } from '../support/pgsnap.ts';
import { isRunning } from '../support/processes.ts';

const mode = (path: string) => statSync(path).mode & 0o777;

describe('the agent service', () => {
  it('holds the session itself: no holder process, the same status and end, over 0600 sockets in 0700 directories', async () => {
    const { cluster, env, stateDir } = await clusterForTest();
    const service = await startAgentService(stateDir);

    const begun = await begin(env, '--label', 'held by the service');
    expect(begun.holderPid).toBe(service.pid);
    expect(await service.sessions()).toEqual([
      expect.objectContaining({ backupId: begun.backupId, label: 'held by the service' }),
    ]);
    expect(await statusOf(env)).toMatchObject({
      inProgress: true,
      state: 'in-backup',
      backupId: begun.backupId,
      holderPid: service.pid,
      serverPid: begun.serverPid,
    });
    expect(await pgsnapSessions(cluster)).toEqual([
      { pid: begun.serverPid, app: `pgsnap:${begun.backupId}` },
    ]);

    expect(mode(stateDir)).toBe(0o700);
    const agentSocket = join(stateDir, 'agent.sock');
    expect(statSync(agentSocket).isSocket()).toBe(true);
    expect(mode(agentSocket)).toBe(0o600);
    const [clusterDir, ...others] = readdirSync(stateDir).filter((name) => name !== 'agent.sock');
    expect(others).toEqual([]);
    expect(mode(join(stateDir, clusterDir!))).toBe(0o700);
    const sessionSocket = join(stateDir, clusterDir!, 'holder.sock');
    expect(statSync(sessionSocket).isSocket()).toBe(true);
    expect(mode(sessionSocket)).toBe(0o600);
    for (const file of ['session.json', 'lock']) expect(mode(join(stateDir, clusterDir!, file))).toBe(0o600);

    const ended = await pgsnap(['end', '--json'], env);
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.json).toMatchObject({ backupId: begun.backupId, startLsn: begun.startLsn });
    // The session is over and its lock released, while the service itself runs on.
    expect(await service.sessions()).toEqual([]);
    expect(readdirSync(join(stateDir, clusterDir!))).not.toContain('lock');
    expect(isRunning(service.pid)).toBe(true);
    await expectNotInBackup(cluster, env);
  });

  it('refuses a second begin naming the backup in progress', async () => {
    const { cluster, env, stateDir } = await clusterForTest();
    await startAgentService(stateDir);
    const begun = await begin(env, '--label', 'first');

    const second = await pgsnap(['begin', '--label', 'second', '--json'], env);
    expect(second.code).toBe(3);
    const error = (second.json as { error: { name: string; message: string } }).error;
    expect(error.name).toBe('BackupInProgressError');
    expect(error.message).toContain(`backup ${begun.backupId} (label "first") is in progress`);
    expect(error.message).toContain('pgsnap end or pgsnap abort');
    expect(await pgsnapSessions(cluster)).toHaveLength(1);

    const ended = await pgsnap(['end', '--json'], env);
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.json).toMatchObject({ backupId: begun.backupId, label: 'first' });
    await expectNotInBackup(cluster, env);
  });

  it('is lost when the service is SIGKILLed mid-backup: the server leaves backup mode, status and end say so', async () => {
    const { cluster, env, stateDir } = await clusterForTest();
    const service = await startAgentService(stateDir);
    const begun = await begin(env, '--label', 'service killed');
    expect(begun.holderPid).toBe(service.pid);

    process.kill(service.pid, 'SIGKILL');
    await service.watched.exited;

    expect(await statusOf(env)).toMatchObject({
      inProgress: false,
      last: {
        backupId: begun.backupId,
        outcome: 'lost',
        reason: expect.stringMatching(
          /^the agent service \(pid \d+\) ended without stopping the backup \(killed\?\)/,
        ),
      },
    });
    const ended = await pgsnap(['end'], env);
    expect(ended.code).toBe(1);
    expect(ended.stderr).toContain(`backup ${begun.backupId} is not valid`);
    expect(ended.stderr).toContain('Take a new backup with pgsnap begin');
    // With the service gone, begin falls back to a holder of its own.
    await expectNotInBackup(cluster, env, { abortLogged: true });

    // A restarted service (systemd's Restart=on-failure) replaces the socket the killed one left.
    const restarted = await startAgentService(stateDir);
    const again = await begin(env, '--label', 'after the restart');
    expect(again.holderPid).toBe(restarted.pid);
    const endedAgain = await pgsnap(['end', '--json'], env);
    expect(endedAgain.code, endedAgain.stderr).toBe(0);
  });

  it('expires after --max-duration and aborts on request, while the service runs on', async () => {
    const { cluster, env, stateDir } = await clusterForTest();
    const service = await startAgentService(stateDir);

    const expiring = await begin(env, '--label', 'too slow', '--max-duration', '2s');
    await expect
      .poll(async () => ((await statusOf(env)).last as { outcome?: string } | null)?.outcome, {
        timeout: 20_000,
        interval: 500,
      })
      .toBe('expired');
    expect(await statusOf(env)).toMatchObject({
      inProgress: false,
      last: {
        backupId: expiring.backupId,
        outcome: 'expired',
        reason: 'the maximum backup duration of 2s passed',
      },
    });
    const endExpired = await pgsnap(['end'], env);
    expect(endExpired.code).toBe(1);
    expect(endExpired.stderr).toContain(`backup ${expiring.backupId} is not valid`);
    expect(endExpired.stderr).toContain('maximum backup duration of 2s');
    await expect.poll(() => pgsnapSessions(cluster), { timeout: 10_000 }).toEqual([]);
    await expect.poll(() => cluster.log(), { timeout: 10_000 }).toContain(backupAbortedLogLine);

    const aborting = await begin(env, '--label', 'aborted');
    expect(aborting.holderPid).toBe(service.pid);
    const aborted = await pgsnap(['abort', '--reason', 'snapshot tool failed', '--json'], env);
    expect(aborted.code, aborted.stderr).toBe(0);
    expect(aborted.json).toEqual({
      aborted: true,
      backupId: aborting.backupId,
      reason: 'snapshot tool failed',
    });
    // abort returns once the session is closed.
    expect(await service.sessions()).toEqual([]);
    expect(await statusOf(env)).toMatchObject({
      inProgress: false,
      last: { backupId: aborting.backupId, outcome: 'aborted', reason: 'snapshot tool failed' },
    });
    const endAborted = await pgsnap(['end'], env);
    expect(endAborted.code).toBe(1);
    expect(endAborted.stderr).toContain('snapshot tool failed');

    expect(isRunning(service.pid)).toBe(true);
    await expectNotInBackup(cluster, env);
  });

  it('holds the backups of two clusters at once', async () => {
    const { cluster, env, stateDir } = await clusterForTest();
    const other = await Cluster.create({ major: 15 });
    try {
      const otherEnv = { ...other.env, PGSNAP_STATE_DIR: stateDir };
      const service = await startAgentService(stateDir);

      const [first, second] = await Promise.all([
        begin(env, '--label', 'cluster one'),
        begin(otherEnv, '--label', 'cluster two'),
      ]);
      expect([first!.holderPid, second!.holderPid]).toEqual([service.pid, service.pid]);
      expect((await service.sessions()).map((s) => s.label).sort()).toEqual(['cluster one', 'cluster two']);
      expect(await pgsnapSessions(cluster)).toEqual([
        { pid: first!.serverPid, app: `pgsnap:${first!.backupId}` },
      ]);
      expect(await pgsnapSessions(other)).toEqual([
        { pid: second!.serverPid, app: `pgsnap:${second!.backupId}` },
      ]);
      expect(await statusOf(otherEnv)).toMatchObject({ inProgress: true, backupId: second!.backupId });

      const endedFirst = await pgsnap(['end', '--json'], env);
      expect(endedFirst.code, endedFirst.stderr).toBe(0);
      expect(endedFirst.json).toMatchObject({ backupId: first!.backupId });
      // Ending one cluster's backup leaves the other's held.
      expect(await pgsnapSessions(other)).toHaveLength(1);
      expect(await statusOf(otherEnv)).toMatchObject({ inProgress: true, state: 'in-backup' });
      const endedSecond = await pgsnap(['end', '--json'], otherEnv);
      expect(endedSecond.code, endedSecond.stderr).toBe(0);
      expect(endedSecond.json).toMatchObject({ backupId: second!.backupId });
      expect(await service.sessions()).toEqual([]);
      await expectNotInBackup(cluster, env);
      await expectNotInBackup(other, otherEnv);
    } finally {
      other.destroy();
    }
  });

  it('keeps the stopped record when end is interrupted, and a second end hands the artifacts over', async () => {
    const { cluster, env, stateDir } = await clusterForTest();
    const gate = archivingGate(cluster);
    await startAgentService(stateDir);
    const begun = await begin(env, '--label', 'archiver down');

    writeFileSync(gate, '');
    const timedOut = await pgsnap(['end', '--archive-timeout', '2s', '--json'], env);
    expect(timedOut.code).toBe(1);
    expect((timedOut.json as { error: { name: string } }).error.name).toBe('TimeoutError');
    expect(await pgsnapSessions(cluster)).toEqual([]);
    expect(await statusOf(env)).toMatchObject({
      inProgress: true,
      state: 'stopped',
      backupId: begun.backupId,
    });
    // While the artifacts wait for their hand-over, no other backup starts.
    const refused = await pgsnap(['begin', '--label', 'too early'], env);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('run pgsnap end to finish it');

    rmSync(gate);
    await cluster.query('SELECT pg_reload_conf()');
    const output = join(stateDir, 'artifacts');
    const ended = await pgsnap(['end', '--archive-timeout', '60s', '--output', output, '--json'], env);
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.stderr).toContain(`resuming the end of backup ${begun.backupId}`);
    expect(readFileSync(join(output, 'backup_label'), 'utf8')).toContain('LABEL: archiver down\n');
    await expectNotInBackup(cluster, env);
  });

  it('aborts the backups it holds when stopped (SIGTERM), saying so', async () => {
    const { cluster, env, stateDir } = await clusterForTest();
    const service = await startAgentService(stateDir);
    const begun = await begin(env, '--label', 'service stopped');

    await service.stop();
    expect(await statusOf(env)).toMatchObject({
      inProgress: false,
      last: { backupId: begun.backupId, outcome: 'aborted', reason: 'the agent service received SIGTERM' },
    });
    await expectNotInBackup(cluster, env, { abortLogged: true });
  });
});

describe('begin without the agent service', () => {
  it('falls back to a holder process of its own, also when a killed service left its socket behind', async () => {
    const { cluster, env, stateDir } = await clusterForTest();
    const service = await startAgentService(stateDir);
    process.kill(service.pid, 'SIGKILL');
    await service.watched.exited;
    expect(statSync(join(stateDir, 'agent.sock')).isSocket()).toBe(true);

    const begun = await begin(env, '--label', 'held by a holder');
    expect(begun.holderPid).not.toBe(service.pid);
    expect(isRunning(begun.holderPid)).toBe(true);
    expect(await statusOf(env)).toMatchObject({ inProgress: true, holderPid: begun.holderPid });

    const ended = await pgsnap(['end', '--json'], env);
    expect(ended.code, ended.stderr).toBe(0);
    await expect.poll(() => isRunning(begun.holderPid)).toBe(false);
    await expectNotInBackup(cluster, env);
  });
});
