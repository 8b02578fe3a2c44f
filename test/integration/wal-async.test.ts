/**
 * The throughput modes: wal-push --async (a resident archiver pushing ready
 * segments in parallel) under a pgbench write load, and wal-fetch --prefetch
 * (the next segments downloaded while PostgreSQL replays) in a restore.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { prepareDataDirectory } from '../../agent/restore/prepare.ts';
import { archiveEverything, archiverStats } from '../support/archiving.ts';
import { copyBackup } from '../support/backup-mode.ts';
import { chownTree, ownedDir } from '../support/cluster.ts';
import { clusterForTest, repositoryForTest, restoredClusterForTest } from '../support/fixtures.ts';
import { balanceSum, pgbench } from '../support/pgbench.ts';
import { storedBackupLabel } from '../support/repository.ts';
import { LocalS3 } from '../support/s3.ts';
import { prefetchedWhenStopped } from '../support/wal-helpers.ts';

let s3: LocalS3;
beforeAll(async () => {
  s3 = await LocalS3.start();
});
afterAll(async () => {
  await s3?.destroy();
});

it('wal-push --async keeps up with a pgbench write load on S3, and every segment arrives intact', async () => {
  const repo = repositoryForTest('s3', s3);
  const { cluster } = await clusterForTest({ settings: { archive_command: "'/bin/false'" } });
  const spool = ownedDir(join(cluster.root, 'spool'));
  cluster.configure({ archive_command: repo.archiveCommand(`--async --parallel 4 --spool-dir ${spool}`) });
  await cluster.query('SELECT pg_reload_conf()');
  await pgbench(cluster, ['-i', '-s', '5', '-q']);
  await pgbench(cluster, ['-T', '5', '-c', '2']);
  const last = await archiveEverything(cluster, { timeoutMs: 60_000 });

  const stats = await archiverStats(cluster);
  expect(stats.failed).toBe(0);
  const repository = await repo.open();
  const pin = await repository.requirePin();
  const stored = await repository.store.list(`${repo.cluster}/wal/`);
  expect(stored.length).toBe(stats.archived);
  expect(stored.at(-1)).toBe(`${last}.zst`);
  // Every segment decodes and verifies; the last ones are still in pg_wal to compare byte for byte.
  for (const object of stored) {
    const name = object.replace(/\.zst$/, '');
    const content = await repository.fetchWal(pin, name);
    const local = join(cluster.dataDir, 'pg_wal', name);
    if (existsSync(local)) expect(content!.equals(readFileSync(local))).toBe(true);
  }
  repository.close();
  const [spoolDir] = readdirSync(join(spool, repo.cluster));
  const log = readFileSync(join(spool, repo.cluster, spoolDir!, 'archiver.log'), 'utf8');
  expect(log).toMatch(/archiver started for .* 4 in parallel/);
});

it('wal-fetch --prefetch restores a backup, the next segments fetched ahead by its helper', async () => {
  const repo = repositoryForTest('file');
  const { cluster: source, env: sourceEnv } = await clusterForTest({
    settings: { archive_command: repo.archiveCommand() },
  });
  const env = { ...sourceEnv, ...repo.env };
  await pgbench(source, ['-i', '-s', '2', '-q']);
  const { backupId, backupDir } = await copyBackup(source, env, { label: 'prefetch', flags: repo.flags });
  // WAL after the backup, for recovery to replay through the repository.
  await pgbench(source, ['-t', '3000', '-c', '2']);
  await archiveEverything(source, { timeoutMs: 60_000 });
  const expected = await balanceSum(source);
  source.stopSync('fast');

  const spool = ownedDir(join(backupDir, 'spool'));
  prepareDataDirectory({
    pgdata: join(backupDir, 'data'),
    backupLabel: await storedBackupLabel(repo, backupId),
    restoreCommand: repo.restoreCommandLine(`--prefetch 4 --spool-dir ${spool}`),
  });
  chownTree(backupDir);
  const restored = await restoredClusterForTest({
    major: source.major,
    root: backupDir,
    dataDir: join(backupDir, 'data'),
    archiveDir: ownedDir(join(backupDir, 'archive')),
  });
  await restored.waitForPromotion();
  expect(await balanceSum(restored)).toBe(expected);

  // The helper stops once recovery no longer asks, having fetched ahead, and leaves no segment behind.
  expect(await prefetchedWhenStopped(spool)).toBeGreaterThan(0);
  expect(readdirSync(spool).filter((f) => /^[0-9A-F]{24}$/.test(f))).toEqual([]);
});
