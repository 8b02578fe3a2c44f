/**
 * `end --backup-id` and `abort --backup-id`, against real PostgreSQL 15: each
 * acts only on the backup it names. Another backup held on the host (an
 * operator's begin, a cron job's pgsnap run) goes on untouched, its session
 * still on the server and its manifest as it was; a backup that is not in
 * progress is reported, not aborted. The state machine's cleanup depends on
 * this: its abort must succeed without touching a backup it did not start.
 */
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { request } from '../../agent/session/control.ts';
import {
  archivingGate,
  backupAbortedLogLine,
  begin,
  clusterForTest,
  expectNotInBackup,
  pgsnapSessions,
  statusOf,
} from '../support/backup-mode.ts';
import { repositoryForTest } from '../support/fixtures.ts';
import { operatorCluster } from '../support/operator-cluster.ts';
import { pgsnap } from '../support/pgsnap.ts';

/** A backupId this host never saw: the state machine's, whose begin was refused. */
const foreign = '20261121T143000Z-f0f0f0';

/** A cluster archiving into a repository, with PGSNAP_REPO and PGSNAP_CLUSTER set as on a host. */
async function clusterWithRepository() {
  const repo = repositoryForTest('file');
  const test = await clusterForTest({ settings: { archive_command: repo.archiveCommand() } });
  const env = { ...test.env, PGSNAP_REPO: repo.url, PGSNAP_CLUSTER: repo.cluster };
  const manifestState = async (backupId: string) => {
    const repository = await repo.open();
    try {
      return (await repository.readManifest(backupId))?.state;
    } finally {
      repository.close();
    }
  };
  return { ...test, env, manifestState };
}

function errorOf(result: { json: Record<string, unknown> | undefined }) {
  return (result.json as { error: { name: string; message: string } }).error;
}

describe('end and abort act only on the backup they name', () => {
  it('end --backup-id of another backup is refused with exit 3 naming both; the backup in progress goes on and ends normally', async () => {
    const { cluster, env, manifestState } = await clusterWithRepository();
    const held = await begin(env, '--label', 'operator');

    const refused = await pgsnap(['end', '--backup-id', foreign, '--json'], env);
    expect(refused.code, refused.stderr).toBe(3);
    expect(errorOf(refused).name).toBe('PreconditionError');
    expect(errorOf(refused).message).toContain(
      `backup ${foreign} is not in progress here: backup ${held.backupId} is, and is left as it is`,
    );

    expect(await pgsnapSessions(cluster)).toEqual([{ pid: held.serverPid, app: `pgsnap:${held.backupId}` }]);
    expect(await statusOf(env)).toMatchObject({
      inProgress: true,
      state: 'in-backup',
      backupId: held.backupId,
    });
    expect(await manifestState(held.backupId)).toBe('started');
    expect(await manifestState(foreign)).toBeUndefined();

    const ended = await pgsnap(
      ['end', '--backup-id', held.backupId, '--snapshot', 'vg0/pgdata@nightly', '--json'],
      env,
    );
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.json).toMatchObject({ backupId: held.backupId, label: 'operator' });
    expect(await manifestState(held.backupId)).toBe('completed');
    expect(cluster.log()).not.toContain(backupAbortedLogLine);
    await expectNotInBackup(cluster, env);
  });

  it('abort --backup-id of another backup exits 0 saying so, and the backup in progress stays held and ends normally', async () => {
    const { cluster, env, manifestState } = await clusterWithRepository();
    const held = await begin(env, '--label', 'operator');

    const aborted = await pgsnap(['abort', '--backup-id', foreign, '--reason', 'cleanup', '--json'], env);
    expect(aborted.code, aborted.stderr).toBe(0);
    expect(aborted.json).toEqual({
      aborted: false,
      backupId: foreign,
      inProgress: held.backupId,
      note: `backup ${foreign} is not in progress here; backup ${held.backupId} is (in-backup), and is left as it is`,
    });

    expect(await pgsnapSessions(cluster)).toEqual([{ pid: held.serverPid, app: `pgsnap:${held.backupId}` }]);
    expect(await statusOf(env)).toMatchObject({
      inProgress: true,
      state: 'in-backup',
      backupId: held.backupId,
    });
    expect(await manifestState(held.backupId)).toBe('started');
    expect(await manifestState(foreign)).toBeUndefined();

    const ended = await pgsnap(['end', '--snapshot', 'vg0/pgdata@nightly', '--json'], env);
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.json).toMatchObject({ backupId: held.backupId });
    expect(await manifestState(held.backupId)).toBe('completed');
    expect(cluster.log()).not.toContain(backupAbortedLogLine);
    await expectNotInBackup(cluster, env);
  });

  it('with no backup in progress, abort --backup-id exits 0 with nothing to abort and end --backup-id exits 3', async () => {
    const { cluster, env } = await clusterForTest();

    const aborted = await pgsnap(['abort', '--backup-id', foreign, '--json'], env);
    expect(aborted.code, aborted.stderr).toBe(0);
    expect(aborted.json).toEqual({
      aborted: false,
      backupId: foreign,
      note: `backup ${foreign} is not in progress here; nothing to abort`,
    });
    const ended = await pgsnap(['end', '--backup-id', foreign, '--json'], env);
    expect(ended.code, ended.stderr).toBe(3);
    expect(errorOf(ended)).toEqual({
      name: 'PreconditionError',
      message: `backup ${foreign} is not in progress here; no backup is`,
    });
    // Without --backup-id, an operator is still told there is nothing to act on.
    const bare = await pgsnap(['abort'], env);
    expect(bare.code).toBe(3);
    expect(bare.stderr).toContain('no backup is in progress here; nothing to abort');

    expect(await statusOf(env)).toEqual({ inProgress: false, last: null });
    await expectNotInBackup(cluster, env);
  });

  it('for a backup that already ended, abort --backup-id reports how it ended and end --backup-id refuses', async () => {
    const { cluster, env } = await clusterForTest();
    const first = await begin(env, '--label', 'first');
    const ended = await pgsnap(['end', '--json'], env);
    expect(ended.code, ended.stderr).toBe(0);

    const afterEnd = await pgsnap(['abort', '--backup-id', first.backupId, '--json'], env);
    expect(afterEnd.code, afterEnd.stderr).toBe(0);
    expect(afterEnd.json).toMatchObject({
      aborted: false,
      backupId: first.backupId,
      note: expect.stringMatching(new RegExp(`^backup ${first.backupId} already ended: completed at `)),
      outcome: { backupId: first.backupId, outcome: 'completed' },
    });
    const endAgain = await pgsnap(['end', '--backup-id', first.backupId, '--json'], env);
    expect(endAgain.code, endAgain.stderr).toBe(3);
    expect(errorOf(endAgain).message).toContain(`backup ${first.backupId} has already ended: completed at`);

    const second = await begin(env, '--label', 'second');
    const operatorAbort = await pgsnap(['abort', '--reason', 'changed my mind', '--json'], env);
    expect(operatorAbort.json).toEqual({
      aborted: true,
      backupId: second.backupId,
      reason: 'changed my mind',
    });
    const afterAbort = await pgsnap(['abort', '--backup-id', second.backupId, '--json'], env);
    expect(afterAbort.code, afterAbort.stderr).toBe(0);
    expect(afterAbort.json).toMatchObject({
      aborted: false,
      outcome: { backupId: second.backupId, outcome: 'aborted', reason: 'changed my mind' },
    });
    // The host keeps the last outcome only: of the first backup it can say no more than that it is not here.
    const older = await pgsnap(['abort', '--backup-id', first.backupId, '--json'], env);
    expect(older.code, older.stderr).toBe(0);
    expect(older.json).toEqual({
      aborted: false,
      backupId: first.backupId,
      note: `backup ${first.backupId} is not in progress here; nothing to abort`,
    });
    expect(await statusOf(env)).toMatchObject({
      inProgress: false,
      last: { backupId: second.backupId, outcome: 'aborted', reason: 'changed my mind' },
    });
    await expectNotInBackup(cluster, env, { abortLogged: true });
  });

  it('a stopped backup whose hand-over is pending is left as it is by end and abort of another backupId', async () => {
    const { cluster, env } = await clusterForTest();
    const gate = archivingGate(cluster);
    const held = await begin(env, '--label', 'hand-over pending');
    writeFileSync(gate, '');
    const timedOut = await pgsnap(['end', '--archive-timeout', '2s', '--json'], env);
    expect(timedOut.code).toBe(1);
    expect(await statusOf(env)).toMatchObject({
      inProgress: true,
      state: 'stopped',
      backupId: held.backupId,
    });

    const refused = await pgsnap(['end', '--backup-id', foreign, '--json'], env);
    expect(refused.code, refused.stderr).toBe(3);
    expect(errorOf(refused).message).toContain(
      `backup ${foreign} is not in progress here: backup ${held.backupId} is`,
    );
    const aborted = await pgsnap(['abort', '--backup-id', foreign, '--json'], env);
    expect(aborted.code, aborted.stderr).toBe(0);
    expect(aborted.json).toMatchObject({
      aborted: false,
      inProgress: held.backupId,
      note: expect.stringContaining('stopped, its artifacts not yet handed over'),
    });
    expect(await statusOf(env)).toMatchObject({
      inProgress: true,
      state: 'stopped',
      backupId: held.backupId,
    });

    rmSync(gate);
    // A reload wakes the archiver, which otherwise retries a failed segment only after a minute.
    await cluster.query('SELECT pg_reload_conf()');
    const ended = await pgsnap(
      ['end', '--backup-id', held.backupId, '--archive-timeout', '60s', '--json'],
      env,
    );
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.stderr).toContain(`resuming the end of backup ${held.backupId}`);
    expect(ended.json).toMatchObject({ backupId: held.backupId, startLsn: held.startLsn });
    await expectNotInBackup(cluster, env);
  });

  it('the session itself refuses end and abort for another backupId, as when the request races a new begin', async () => {
    const { cluster, env, stateDir } = await clusterForTest();
    const held = await begin(env, '--label', 'held');
    const [clusterDir] = readdirSync(stateDir);
    const socket = join(stateDir, clusterDir!, 'holder.sock');

    for (const message of [
      { op: 'end', backupId: foreign },
      { op: 'abort', reason: 'late cleanup', backupId: foreign },
    ] as const) {
      expect(await request(socket, message)).toEqual({
        ok: false,
        error: {
          name: 'PreconditionError',
          message: expect.stringContaining(
            `backup ${foreign} is not in progress here: backup ${held.backupId} is, and pgsnap ${message.op} leaves it as it is`,
          ),
        },
      });
    }
    expect(await pgsnapSessions(cluster)).toEqual([{ pid: held.serverPid, app: `pgsnap:${held.backupId}` }]);
    expect(await statusOf(env)).toMatchObject({
      inProgress: true,
      state: 'in-backup',
      backupId: held.backupId,
    });

    const ended = await pgsnap(['end', '--json'], env);
    expect(ended.code, ended.stderr).toBe(0);
    expect(cluster.log()).not.toContain(backupAbortedLogLine);
    await expectNotInBackup(cluster, env);
  });
});

describe('on an operator-made PostgreSQL 15 cluster (peer auth, a pgpass role, the logging collector)', () => {
  it('abort of another backup leaves the one in progress held; end ends it, the server out of backup mode', async () => {
    const repo = repositoryForTest('file');
    const source = await operatorCluster({ major: 15, archiveCommand: repo.archiveCommand() });
    try {
      const env = {
        ...source.env,
        PGSNAP_STATE_DIR: join(source.cluster.root, 'state'),
        PGSNAP_REPO: repo.url,
        PGSNAP_CLUSTER: repo.cluster,
      };
      const sessions = () =>
        source.psql("SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'pgsnap:%'");
      const held = await begin(env, '--label', 'operator');
      expect(sessions()).toBe(`pgsnap:${held.backupId}`);

      const other = await pgsnap(['abort', '--backup-id', foreign, '--json'], env);
      expect(other.code, other.stderr).toBe(0);
      expect(sessions()).toBe(`pgsnap:${held.backupId}`);
      expect(await statusOf(env)).toMatchObject({ inProgress: true, backupId: held.backupId });

      const ended = await pgsnap(['end', '--backup-id', held.backupId, '--json'], env);
      expect(ended.code, ended.stderr).toBe(0);
      expect(ended.json).toMatchObject({ backupId: held.backupId, label: 'operator' });
      expect(sessions()).toBe('');
      expect(
        readdirSync(join(repo.url.replace('file://', ''), repo.cluster, 'backups', held.backupId)),
      ).toContain('backup_label');
    } finally {
      source.cluster.destroy();
    }
  }, 120_000);
});
