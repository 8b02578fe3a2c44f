/**
 * `pgsnap drill` on clusters pgsnap did not make (test/support/operator-cluster.ts):
 * peer auth on the socket, the logging collector on, PostgreSQL's default
 * max_wal_senders and max_connections / max_worker_processes above any
 * default, the data in an `app` database, a pgpass role taking the backup.
 */
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OperatorCluster, operatorCluster } from '../support/operator-cluster.ts';
import { copyProviderBackup, pgsnap } from '../support/pgsnap.ts';
import { type TestRepository, testRepository } from '../support/repository.ts';

describe.each([15, 18])('on an operator-made PostgreSQL %i cluster', (major) => {
  let repo: TestRepository;
  let source: OperatorCluster;
  let scratch: string;
  let backupId: string;

  beforeAll(async () => {
    repo = testRepository('file');
    source = await operatorCluster({ major, archiveCommand: repo.archiveCommand() });
    scratch = mkdtempSync(join(tmpdir(), 'pgsnap-drill-test-'));
    chmodSync(scratch, 0o711);
    backupId = await copyProviderBackup(
      source.cluster.root,
      { ...source.env, PGSNAP_STATE_DIR: join(source.cluster.root, 'state') },
      repo.flags,
    );
  }, 120_000);

  afterAll(() => {
    source?.cluster.destroy();
    repo?.destroy();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('passes, checking the app database, and leaves nothing behind', async () => {
    const drilled = await pgsnap(['drill', '--backup-id', backupId, '--json', ...repo.flags], {
      TMPDIR: scratch,
    });
    expect(drilled.code, drilled.stderr).toBe(0);
    expect(drilled.json).toMatchObject({
      ok: true,
      provider: 'copy',
      // app's customers and orders; postgres has none.
      check: { consistent: true, amcheck: 'passed', tables: 2, databases: 2 },
    });
    expect(readdirSync(scratch)).toEqual([]);
    // The source goes on, its data untouched.
    expect(source.psql('SELECT count(*) FROM orders')).toBe('20000');
  }, 120_000);

  it('with --keep, keeps the restored data directory it names', async () => {
    const drilled = await pgsnap(['drill', '--backup-id', backupId, '--keep', '--json', ...repo.flags], {
      TMPDIR: scratch,
    });
    expect(drilled.code, drilled.stderr).toBe(0);
    const kept = drilled.json!.kept as string;
    expect(kept.startsWith(scratch)).toBe(true);
    expect(readFileSync(join(kept, 'PG_VERSION'), 'utf8').trim()).toBe(String(major));
    expect(drilled.stderr).toContain(`kept the restored data directory ${kept}`);
    rmSync(join(scratch, readdirSync(scratch)[0]!), { recursive: true, force: true });
  }, 120_000);

  it('names the reason from the server log when recovery fails, and keeps what failed with --keep', async () => {
    // Without its WAL the backup cannot be recovered.
    const wal = join(repo.url.replace('file://', ''), repo.cluster, 'wal');
    const moved = `${wal}.aside`;
    rmSync(moved, { recursive: true, force: true });
    renameSync(wal, moved);
    try {
      const failed = await pgsnap(['drill', '--backup-id', backupId, '--keep', ...repo.flags], {
        TMPDIR: scratch,
      });
      expect(failed.code).not.toBe(0);
      expect(failed.stderr).toMatch(/its log says: .*FATAL: .*(checkpoint record|WAL ends before)/);
      expect(failed.stderr).not.toContain('redirecting log output to logging collector');
      const [, pgdata, log] = /Kept the restored data directory (\S+) and the server's log (\S+)/.exec(
        failed.stderr,
      )!;
      expect(existsSync(join(pgdata!, 'backup_label'))).toBe(true);
      expect(readFileSync(log!, 'utf8')).toMatch(/FATAL/);
    } finally {
      renameSync(moved, wal);
      for (const name of readdirSync(scratch)) rmSync(join(scratch, name), { recursive: true, force: true });
    }
  }, 120_000);
});
