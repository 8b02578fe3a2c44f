/**
 * A backup restored from the repository alone: begin catalogues it, end
 * stores the artifacts beside the WAL, and the restore reads backup_label back
 * from backups/<backupId>/ and recovers through restore_command = pgsnap
 * wal-fetch. Nothing else of the source survives.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareDataDirectory } from '../../agent/restore/prepare.ts';
import { chownTree, ownedDir } from '../support/cluster.ts';
import { clusterForTest, repositoryForTest, restoredClusterForTest } from '../support/fixtures.ts';
import { pgsnap } from '../support/pgsnap.ts';
import type { BackendKind } from '../support/repository.ts';
import { LocalS3 } from '../support/s3.ts';
import { startWriter } from '../support/writer.ts';

const run = promisify(execFile);

let s3: LocalS3;
beforeAll(async () => {
  s3 = await LocalS3.start();
});
afterAll(async () => {
  await s3?.destroy();
});

describe.each<BackendKind>(['file', 's3'])('a backup catalogued in a %s repository', (kind) => {
  it('restores from the repository alone: backup_label from backups/<backupId>/, WAL through wal-fetch', async () => {
    const repo = repositoryForTest(kind, s3);
    const { cluster: source, env: sourceEnv } = await clusterForTest({
      settings: { archive_command: repo.archiveCommand() },
    });
    await source.query('CREATE TABLE t (id bigint PRIMARY KEY, payload text)');
    const env = { ...sourceEnv, ...repo.env };
    const writerClient = await source.client();
    const writer = startWriter(writerClient, ['t']);
    let backupId: string;
    let committedBeforeEnd: number;
    let startLsn: string;
    const backupDir = ownedDir(join(source.root, 'backup'));
    try {
      const begun = await pgsnap(
        ['begin', '--label', 'repository proof', '--fast', '--json', ...repo.flags],
        env,
      );
      expect(begun.code, begun.stderr).toBe(0);
      backupId = begun.json!.backupId as string;
      startLsn = begun.json!.startLsn as string;
      const started = await pgsnap(['backups', 'show', backupId, '--json', ...repo.flags], env);
      expect(started.json).toMatchObject({
        backupId,
        state: 'started',
        label: 'repository proof',
        startLsn,
      });

      await run('cp', ['-a', source.dataDir, join(backupDir, 'data')]);
      committedBeforeEnd = writer.lastCommitted;
      const ended = await pgsnap(
        ['end', '--snapshot', join(backupDir, 'data'), '--json', ...repo.flags],
        env,
      );
      expect(ended.code, ended.stderr).toBe(0);
      expect(ended.json!.manifest).toMatchObject({ state: 'completed' });
    } finally {
      await writer.stop();
      await writerClient.end();
    }
    expect(committedBeforeEnd).toBeGreaterThan(0);

    const list = await pgsnap(['backups', 'list', '--json', ...repo.flags], env);
    expect(list.json!.backups).toEqual([expect.objectContaining({ backupId, state: 'completed' })]);
    const verified = await pgsnap(['backups', 'show', backupId, '--verify', ...repo.flags], env);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toMatch(/verified: +artifacts ok, \d+ WAL segments present/);

    // The source host is gone: only the repository is left.
    source.stopSync('immediate');
    const repository = await repo.open();
    const manifest = (await repository.readManifest(backupId))!;
    expect(manifest.artifacts.map((a) => a.name).sort()).toEqual([
      expect.stringMatching(/^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/),
      'backup_label',
    ]);
    const labelRecord = manifest.artifacts.find((a) => a.name === 'backup_label')!;
    const label = (await repository.readArtifact(backupId, labelRecord)).toString('utf8');
    repository.close();
    expect(label).toContain('LABEL: repository proof');

    const restoredData = join(backupDir, 'data');
    prepareDataDirectory({
      pgdata: restoredData,
      backupLabel: label,
      expectedSha256: { backupLabel: labelRecord.sha256 },
      restoreCommand: repo.restoreCommandLine(),
      // The restored cluster is this cluster from now on: it archives its new timeline into the same place.
      keepArchiving: true,
    });
    chownTree(backupDir);
    const restored = await restoredClusterForTest({
      major: source.major,
      root: backupDir,
      dataDir: restoredData,
      archiveDir: ownedDir(join(backupDir, 'archive')),
      settings: { archive_command: repo.archiveCommand() },
    });
    await restored.waitForPromotion();
    const [row] = await restored.query<{ n: string }>('SELECT count(*) AS n FROM t WHERE id <= $1', [
      committedBeforeEnd,
    ]);
    expect(Number(row!.n)).toBe(committedBeforeEnd);
    expect(restored.log()).toContain(`redo starts at ${startLsn}`);
    expect(restored.log()).toContain('consistent recovery state reached');

    // The new timeline's history file and segments are archived like any other file.
    const [timeline] = await restored.query<{ tli: number }>(
      'SELECT timeline_id AS tli FROM pg_control_checkpoint()',
    );
    const history = `${timeline!.tli.toString(16).toUpperCase().padStart(8, '0')}.history`;
    await restored.query('CREATE TABLE after_restore AS SELECT 1 AS x');
    const [segment] = await restored.query<{ name: string }>(
      'SELECT pg_walfile_name(pg_current_wal_insert_lsn()) AS name',
    );
    await restored.query('SELECT pg_switch_wal()');
    const target = join(backupDir, 'fetched');
    for (const name of [history, segment!.name]) {
      let fetched = await pgsnap(['wal-fetch', name, target, ...repo.flags], env);
      for (let i = 0; fetched.code === 1 && i < 100; i++) {
        await new Promise((r) => setTimeout(r, 200));
        fetched = await pgsnap(['wal-fetch', name, target, ...repo.flags], env);
      }
      expect(fetched.code, `${name}: ${fetched.stderr}`).toBe(0);
    }
  });
});

it('begin refuses a repository pinned to another cluster and leaves no backup running', async () => {
  const repo = repositoryForTest('file');
  const { env: env1 } = await clusterForTest({
    settings: { archive_command: repo.archiveCommand() },
  });
  const { cluster: second, env: env2 } = await clusterForTest({
    settings: { archive_command: repo.archiveCommand() },
  });
  const begun = await pgsnap(['begin', '--label', 'first', '--fast', '--json', ...repo.flags], env1);
  expect(begun.code, begun.stderr).toBe(0);
  expect((await pgsnap(['abort', ...repo.flags], env1)).code).toBe(0);
  const aborted = await pgsnap(
    ['backups', 'show', begun.json!.backupId as string, '--json', ...repo.flags],
    {},
  );
  expect(aborted.json).toMatchObject({ state: 'aborted', failure: { reason: 'aborted by operator' } });

  const refused = await pgsnap(['begin', '--label', 'second', '--fast', '--json', ...repo.flags], env2);
  expect(refused.code).toBe(3);
  expect(refused.json!.error).toMatchObject({ name: 'ClusterMismatchError' });
  const [backends] = await second.query<{ n: string }>(
    "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name LIKE 'pgsnap%'",
  );
  expect(Number(backends!.n)).toBe(0);
  const status = await pgsnap(['status', '--json', '--cluster', repo.cluster], env2);
  expect(status.json).toMatchObject({ inProgress: false });
  const list = await pgsnap(['backups', 'list', '--json', ...repo.flags], {});
  expect((list.json!.backups as Array<{ label: string }>).map((b) => b.label)).toEqual(['first']);
});
