/**
 * `pgsnap drill` on a backup taken with `pgsnap run --provider copy` into a
 * file:// repository: restored from its snapshots beside the running source,
 * recovered and checked; and refused when an artifact was altered.
 */
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { Cluster } from '../support/cluster.ts';
import { copyProviderBackup, pgsnap } from '../support/pgsnap.ts';
import { testRepository } from '../support/repository.ts';

it('drills a copy-provider backup from the repository while the source keeps running, and cleans up', async () => {
  const repo = testRepository('file');
  const source = await Cluster.create({ settings: { archive_command: repo.archiveCommand() } });
  const scratch = mkdtempSync(join(tmpdir(), 'pgsnap-drill-test-'));
  chmodSync(scratch, 0o711);
  try {
    await source.query(
      'CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g',
    );
    await source.query('CREATE INDEX ON t (v)');
    const env = { ...source.env, PGSNAP_STATE_DIR: join(source.root, 'state') };
    const backupId = await copyProviderBackup(source.root, env, repo.flags);
    const shown = await pgsnap(['backups', 'show', backupId, '--json', ...repo.flags], env);
    expect(shown.json).toMatchObject({
      state: 'completed',
      snapshots: [{ provider: 'copy', role: 'data', path: source.dataDir, state: 'taken' }],
    });

    const drilled = await pgsnap(['drill', '--backup-id', backupId, '--json', ...repo.flags], {
      TMPDIR: scratch,
    });
    expect(drilled.code, drilled.stderr).toBe(0);
    expect(drilled.json).toMatchObject({
      ok: true,
      provider: 'copy',
      check: { consistent: true, amcheck: 'passed', tables: 1 },
    });
    expect(readdirSync(scratch)).toEqual([]);
    // The source was never touched: it still takes writes.
    await source.query('INSERT INTO t VALUES (0, $1)', ['after the drill']);

    const manifest = JSON.parse(
      (await (await repo.open()).store.get(`orders-db/backups/${backupId}/manifest.json`))!.toString(),
    );
    const labelPath = join(repo.url.replace('file://', ''), 'orders-db', 'backups', backupId, 'backup_label');
    writeFileSync(labelPath, 'START WAL LOCATION: 0/0 (file 000000010000000000000000)\n');
    const tampered = await pgsnap(['drill', '--backup-id', backupId, ...repo.flags], { TMPDIR: scratch });
    expect(tampered.code).toBe(1);
    expect(tampered.stderr).toContain(`is corrupt: sha256`);
    expect(tampered.stderr).toContain(
      manifest.artifacts.find((a: { name: string }) => a.name === 'backup_label').sha256,
    );
    expect(readdirSync(scratch)).toEqual([]);
  } finally {
    source.destroy();
    repo.destroy();
    rmSync(scratch, { recursive: true, force: true });
  }
});
