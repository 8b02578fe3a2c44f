/**
 * `pgsnap retention` on a file:// repository with three real backups taken by
 * the copy provider: the dry run deletes nothing; the real run deletes the two
 * older backups whole (snapshots, artifacts, manifests) and the WAL before the
 * kept backup, which still restores.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { Cluster } from '../support/cluster.ts';
import { pgsnap } from '../support/pgsnap.ts';
import { testRepository } from '../support/repository.ts';

it('keeps the last backup and everything it needs, and deletes the rest whole', async () => {
  const repo = testRepository('file');
  const source = await Cluster.create({ settings: { archive_command: repo.archiveCommand() } });
  try {
    await source.query('CREATE TABLE t (id int)');
    const env = { ...source.env, PGSNAP_STATE_DIR: join(source.root, 'state') };
    const snapshotDir = join(source.root, 'snapshots');
    const backups: Array<{ backupId: string; startWalFile: string; snapshot: string }> = [];
    for (let i = 0; i < 3; i++) {
      await source.query('INSERT INTO t SELECT generate_series(1, 1000)');
      await source.query('SELECT pg_switch_wal()');
      const ran = await pgsnap(
        ['run', '--provider', 'copy', '--snapshot-dir', snapshotDir, '--fast', '--json', ...repo.flags],
        env,
      );
      expect(ran.code, ran.stderr).toBe(0);
      const snapshot = (ran.json!.snapshots as Array<{ snapshot: string }>)[0]!.snapshot;
      backups.push({
        backupId: ran.json!.backupId as string,
        startWalFile: ran.json!.startWalFile as string,
        snapshot,
      });
    }
    const walDir = join(repo.url.replace('file://', ''), 'orders-db', 'wal');
    const walBefore = readdirSync(walDir);

    const dry = await pgsnap(['retention', '--keep-last', '1', '--dry-run', '--json', ...repo.flags], env);
    expect(dry.code, dry.stderr).toBe(0);
    expect((dry.json!.remove as Array<{ backupId: string }>).map((r) => r.backupId)).toEqual([
      backups[0]!.backupId,
      backups[1]!.backupId,
    ]);
    expect(readdirSync(walDir)).toEqual(walBefore);
    for (const b of backups) expect(existsSync(b.snapshot)).toBe(true);

    const applied = await pgsnap(['retention', '--keep-last', '1', '--json', ...repo.flags], env);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.json!.walFrom).toBe(backups[2]!.startWalFile);
    const list = await pgsnap(['backups', 'list', '--json', ...repo.flags], env);
    expect((list.json!.backups as Array<{ backupId: string }>).map((b) => b.backupId)).toEqual([
      backups[2]!.backupId,
    ]);
    expect(existsSync(backups[0]!.snapshot)).toBe(false);
    expect(existsSync(backups[1]!.snapshot)).toBe(false);
    expect(existsSync(backups[2]!.snapshot)).toBe(true);
    const walAfter = readdirSync(walDir);
    const segments = (names: string[]) =>
      names.filter((n) => /^[0-9A-F]{24}\./.test(n) && !n.includes('.backup'));
    expect(segments(walAfter).every((n) => n.slice(0, 24) >= backups[2]!.startWalFile)).toBe(true);
    expect(segments(walBefore).some((n) => n.slice(0, 24) < backups[2]!.startWalFile)).toBe(true);

    // What is left still restores.
    const drilled = await pgsnap(['drill', '--backup-id', backups[2]!.backupId, '--json', ...repo.flags], {});
    expect(drilled.code, drilled.stderr).toBe(0);
    expect(drilled.json!.ok).toBe(true);
  } finally {
    source.destroy();
    repo.destroy();
  }
});
