/**
 * One backup per cluster, seen from the server: a backup begun by another OS
 * user with a state directory of its own is found in pg_stat_activity, so a
 * second begin is refused naming who holds the first, and root's status shows
 * it. And a `pgsnap run` killed with SIGKILL does not leave the server in
 * backup mode nor its snapshot command running.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Begun, clusterForTest, expectNotInBackup, pgsnapSessions } from '../support/backup-mode.ts';
import { ownedDir } from '../support/cluster.ts';
import { type CliResult, pgsnap, pgsnapBin } from '../support/pgsnap.ts';
import { isRunning, spawnWatched } from '../support/processes.ts';

/** pgsnap run as the postgres OS user, with `env` and nothing else of root's environment. */
function pgsnapAsPostgres(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  const pairs = Object.entries({ PATH: process.env.PATH, ...env }).map(([k, v]) => `${k}=${v}`);
  return new Promise((resolve, reject) => {
    const child = spawn(
      'runuser',
      ['-u', 'postgres', '--', 'env', '-i', ...pairs, process.execPath, pgsnapBin, ...args],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      let json: Record<string, unknown> | undefined;
      try {
        json = JSON.parse(stdout) as Record<string, unknown>;
      } catch {}
      resolve({ code: code ?? -1, stdout, stderr, json });
    });
  });
}

describe.skipIf(process.getuid?.() !== 0)('one backup per cluster, seen from the server (needs root)', () => {
  it("refuses root's begin while postgres's backup runs, naming its holder; root's status shows it", async () => {
    const { cluster, env } = await clusterForTest();
    const postgresState = ownedDir(join(cluster.root, 'postgres-state'));
    const postgresEnv = { ...cluster.env, PGSNAP_STATE_DIR: postgresState };
    const begun = await pgsnapAsPostgres(
      ['begin', '--fast', '--json', '--label', 'as postgres'],
      postgresEnv,
    );
    expect(begun.code, begun.stderr).toBe(0);
    const first = begun.json as unknown as Begun;

    // Root, with its own state directory: nothing there says a backup runs, the server does.
    const status = await pgsnap(['status', '--json'], env);
    expect(status.code, status.stderr).toBe(0);
    expect(status.json).toMatchObject({
      inProgress: true,
      state: 'elsewhere',
      backupId: first.backupId,
      serverPid: first.serverPid,
      role: 'postgres',
    });

    const second = await pgsnap(['begin', '--fast', '--json', '--label', 'as root'], env);
    expect(second.code).toBe(3);
    expect(second.stderr).toContain('another pgsnap backup of this cluster is in progress on the server');
    expect(second.stderr).toContain(`backup ${first.backupId} held by server pid ${first.serverPid}`);
    expect(second.stderr).toMatch(/since \d{4}-\d\d-\d\dT[\d:.]+Z, role postgres/);
    // The first backup is untouched, and ends normally.
    expect(await pgsnapSessions(cluster)).toEqual([
      { pid: first.serverPid, app: `pgsnap:${first.backupId}` },
    ]);
    const ended = await pgsnapAsPostgres(['end', '--json'], postgresEnv);
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.json).toMatchObject({ backupId: first.backupId });
    await expectNotInBackup(cluster, env);
  });

  it('ends the backup and stops the snapshot command when pgsnap run is killed with SIGKILL', async () => {
    const { cluster, env } = await clusterForTest();
    const marker = join(cluster.root, 'snapshot-command.pid');
    // A snapshot command that records its pid and takes its time.
    const run = spawnWatched(
      process.execPath,
      [
        pgsnapBin,
        'run',
        '--fast',
        '--label',
        'killed run',
        '--',
        'sh',
        '-c',
        `echo $$ > ${marker}; exec sleep 600`,
      ],
      env,
    );
    await expect.poll(() => pgsnapSessions(cluster), { timeout: 30_000 }).toHaveLength(1);
    await expect
      .poll(
        () => {
          try {
            return Number(readFileSync(marker, 'utf8'));
          } catch {
            return 0;
          }
        },
        { timeout: 30_000 },
      )
      .toBeGreaterThan(0);
    const command = Number(readFileSync(marker, 'utf8'));
    expect(isRunning(command)).toBe(true);

    process.kill(run.child.pid!, 'SIGKILL');
    await run.exited;

    // Within a bounded wait: the session closed (the server ended backup mode), the command gone.
    await expect.poll(() => pgsnapSessions(cluster), { timeout: 15_000 }).toEqual([]);
    await expect.poll(() => isRunning(command), { timeout: 15_000 }).toBe(false);
    const status = await pgsnap(['status', '--json'], env);
    expect(status.json).toMatchObject({
      inProgress: false,
      last: { outcome: 'aborted', reason: expect.stringContaining('pgsnap run (pid') },
    });
    await expectNotInBackup(cluster, env, { abortLogged: true });
  });
});
