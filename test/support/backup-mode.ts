/**
 * What an operator checks after a failure: that PostgreSQL is not left in
 * backup mode. PostgreSQL 15 has no pg_is_in_backup(), so "not in backup mode"
 * is proven from the outside: no pgsnap session is connected, the server logged
 * that it aborted the backup (when one was running), and a new begin + end works.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { type Cluster, type ClusterOptions, ownedDir } from './cluster.ts';
import { clusterForTest as anyClusterForTest, type TestCluster } from './fixtures.ts';
import { pgsnap } from './pgsnap.ts';

/**
 * Restarts the server with an archive_command that fails while the returned
 * file exists (none yet): a test writes it to stop archiving, and removes it
 * to let the archiver go on.
 */
export function archivingGate(cluster: Cluster): string {
  const gate = join(cluster.dataDir, 'archiving-blocked');
  const archive = cluster.archiveDir;
  cluster.configure({
    archive_command: `'test ! -f ${gate} && test ! -f ${archive}/%f && cp %p ${archive}/%f'`,
  });
  cluster.stopSync('fast');
  cluster.start();
  return gate;
}

/** What `pgsnap begin --json` prints, as far as the tests read it. */
export interface Begun {
  backupId: string;
  holderPid: number;
  serverPid: number;
  startLsn: string;
}

/** `pgsnap begin --fast --json` with more flags; it must succeed. */
export async function begin(env: NodeJS.ProcessEnv, ...flags: string[]): Promise<Begun> {
  const result = await pgsnap(['begin', '--fast', '--json', ...flags], env);
  expect(result.code, result.stderr).toBe(0);
  return result.json as unknown as Begun;
}

/**
 * A backup taken the way a snapshot takes one, with `cp -a` as the snapshot:
 * `begin --fast`, the data directory copied to `<root>/backup/<copy>` for each
 * copy (default: `data`), `end`. Both must succeed; the server log's tail is
 * shown when end fails.
 */
export async function copyBackup(
  source: Cluster,
  env: NodeJS.ProcessEnv,
  options: { label: string; flags: string[]; copies?: string[] },
): Promise<{ backupId: string; backupDir: string }> {
  const begun = await pgsnap(['begin', '--label', options.label, '--fast', '--json', ...options.flags], env);
  expect(begun.code, begun.stderr).toBe(0);
  const backupDir = ownedDir(join(source.root, 'backup'));
  const taken: string[] = [];
  for (const copy of options.copies ?? ['data']) {
    await promisify(execFile)('cp', ['-a', source.dataDir, join(backupDir, copy)]);
    // Named to end, as an operator names the snapshot taken: a backup is completed only with one.
    taken.push('--snapshot', join(backupDir, copy));
  }
  const ended = await pgsnap(['end', '--json', ...taken, ...options.flags], env);
  expect(ended.code, `${ended.stderr}\n${source.log().slice(-3000)}`).toBe(0);
  return { backupId: begun.json!.backupId as string, backupDir };
}

/** `pgsnap status --json`; it must succeed. */
export async function statusOf(env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const result = await pgsnap(['status', '--json'], env);
  expect(result.code, result.stderr).toBe(0);
  return result.json!;
}

/** Logged by do_pg_abort_backup when the session that ran pg_backup_start closes without pg_backup_stop. */
export const backupAbortedLogLine = 'aborting backup due to backend exiting before pg_backup_stop was called';

export type { TestCluster };

/**
 * A throwaway cluster and pgsnap state directory, both removed when the test
 * finishes, also on failure: fixtures.ts's clusterForTest, on PostgreSQL 15
 * unless told otherwise.
 */
export function clusterForTest(options: ClusterOptions = {}): Promise<TestCluster> {
  return anyClusterForTest({ major: 15, ...options });
}

/** The backends pgsnap holds a backup session on (application_name `pgsnap:<backupId>`). */
export async function pgsnapSessions(cluster: Cluster): Promise<Array<{ pid: number; app: string }>> {
  return cluster.query<{ pid: number; app: string }>(
    "SELECT pid, application_name AS app FROM pg_stat_activity WHERE application_name LIKE 'pgsnap:%'",
  );
}

/**
 * Asserts that the server is not in backup mode and that pgsnap can take the
 * next backup. `abortLogged`: a backup was running and its session closed, so
 * the server must have logged that it aborted it.
 */
export async function expectNotInBackup(
  cluster: Cluster,
  env: NodeJS.ProcessEnv,
  options: { abortLogged?: boolean } = {},
): Promise<void> {
  // A closed session's backend leaves pg_stat_activity a moment after the client goes.
  await expect.poll(() => pgsnapSessions(cluster), { timeout: 10_000 }).toEqual([]);
  if (options.abortLogged) {
    await expect.poll(() => cluster.log(), { timeout: 10_000 }).toContain(backupAbortedLogLine);
  }
  const status = await pgsnap(['status', '--json'], env);
  expect(status.code, status.stderr).toBe(0);
  expect(status.json).toMatchObject({ inProgress: false });

  const begun = await pgsnap(['begin', '--label', 'after the failure', '--fast', '--json'], env);
  expect(begun.code, begun.stderr).toBe(0);
  const ended = await pgsnap(['end', '--json'], env);
  expect(ended.code, ended.stderr).toBe(0);
  expect(ended.json).toMatchObject({ backupId: begun.json!.backupId, label: 'after the failure' });
}
