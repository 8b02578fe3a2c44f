/**
 * `pgsnap restore` on a data directory restored from a snapshot, driven from a
 * file:// repository: point in time to a named restore point with the
 * tablespace moved, and the refusals that keep an operator from restoring
 * something that cannot be consistent.
 */
import { execFile } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asPostgres, Cluster, chownTree, ownedDir } from '../support/cluster.ts';
import { pgsnap } from '../support/pgsnap.ts';
import { type TestRepository, testRepository } from '../support/repository.ts';

const run = promisify(execFile);

const notRoot = process.getuid?.() === 0 ? undefined : 'they need root, which runs pgsnap restore on a host';
if (notRoot && process.env.CI) throw new Error(`CI must run the root-run restore tests, but ${notRoot}`);
if (notRoot) console.warn(`SKIPPING the planted-link restore tests: ${notRoot}`);

interface Backup {
  source: Cluster;
  repo: TestRepository;
  env: NodeJS.ProcessEnv;
  backupId: string;
  startLsn: string;
  stopLsn: string;
  snapshot: string;
  tablespaceSnapshot: string;
  tablespaceOid: string;
  rowsAtRestorePoint: number;
}

/** A backup of a cluster with a tablespace, 100 rows, a restore point, then 50 more rows. */
async function takeBackup(): Promise<Backup> {
  const repo = testRepository('file');
  const source = await Cluster.create({ settings: { archive_command: repo.archiveCommand() } });
  const tablespaceDir = ownedDir(join(source.root, 'ts'));
  await source.query(`CREATE TABLESPACE ts LOCATION '${tablespaceDir}'`);
  await source.query('CREATE TABLE t (id bigint PRIMARY KEY) TABLESPACE ts');
  await source.query('INSERT INTO t SELECT generate_series(1, 60)');
  const env = { ...source.env, PGSNAP_STATE_DIR: join(source.root, 'state') };
  const begun = await pgsnap(['begin', '--label', 'restore tests', '--fast', '--json', ...repo.flags], env);
  expect(begun.code, begun.stderr).toBe(0);
  const snapshot = join(ownedDir(join(source.root, 'snapshot')), 'data');
  const tablespaceSnapshot = join(source.root, 'snapshot', 'ts');
  await run('cp', ['-a', source.dataDir, snapshot]);
  await run('cp', ['-a', tablespaceDir, tablespaceSnapshot]);
  await source.query('INSERT INTO t SELECT generate_series(61, 100)');
  const ended = await pgsnap(['end', '--json', ...repo.flags], env);
  expect(ended.code, ended.stderr).toBe(0);
  await source.query("SELECT pg_create_restore_point('before-the-mistake')");
  await source.query('INSERT INTO t SELECT generate_series(101, 150)');
  await source.query('SELECT pg_switch_wal()');
  const [oid] = await source.query<{ oid: string }>(
    "SELECT oid::text FROM pg_tablespace WHERE spcname = 'ts'",
  );
  return {
    source,
    repo,
    env,
    backupId: begun.json!.backupId as string,
    startLsn: begun.json!.startLsn as string,
    stopLsn: ended.json!.stopLsn as string,
    snapshot,
    tablespaceSnapshot,
    tablespaceOid: oid!.oid,
    rowsAtRestorePoint: 100,
  };
}

let backup: Backup;
beforeAll(async () => {
  backup = await takeBackup();
  // Archive everything up to the restore point and beyond before the source goes.
  for (let i = 0; i < 100; i++) {
    const [row] = await backup.source.query<{ n: string }>(
      "SELECT count(*) AS n FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'",
    );
    if (Number(row!.n) === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
}, 120_000);
afterAll(() => {
  backup?.source.destroy();
  backup?.repo.destroy();
});

describe('pgsnap restore', () => {
  it('recovers to a named restore point from the repository, with the tablespace in a new place', async () => {
    const root = ownedDir(join(backup.source.root, 'pitr'));
    await run('cp', ['-a', backup.snapshot, join(root, 'data')]);
    await run('cp', ['-a', backup.tablespaceSnapshot, join(root, 'ts')]);
    const restored = await pgsnap(
      [
        'restore',
        '--backup-id',
        backup.backupId,
        '--pgdata',
        join(root, 'data'),
        '--tablespace',
        `${backup.tablespaceOid}=${join(root, 'ts')}`,
        '--target-name',
        'before-the-mistake',
        '--json',
        ...backup.repo.flags,
      ],
      backup.repo.env,
    );
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.json).toMatchObject({
      backupId: backup.backupId,
      archiving: 'off',
      target: { kind: 'name' },
    });
    expect(readFileSync(join(root, 'data', 'tablespace_map'), 'utf8')).toBe(
      `${backup.tablespaceOid} ${join(root, 'ts')}\n`,
    );
    chownTree(root);
    const cluster = await Cluster.create({
      major: backup.source.major,
      root,
      dataDir: join(root, 'data'),
      archiveDir: ownedDir(join(root, 'unused-archive')),
    });
    try {
      await cluster.waitForPromotion();
      const [row] = await cluster.query<{ n: string; max: string }>(
        'SELECT count(*) AS n, max(id) AS max FROM t',
      );
      expect(Number(row!.n)).toBe(backup.rowsAtRestorePoint);
      expect(Number(row!.max)).toBe(backup.rowsAtRestorePoint);
      expect(cluster.log()).toContain('recovery stopping at restore point "before-the-mistake"');
      const [mode] = await cluster.query<{ v: string }>("SELECT current_setting('archive_mode') AS v");
      expect(mode!.v).toBe('off');
    } finally {
      cluster.destroy();
    }
  });

  it('refuses a data directory of another cluster, and leaves it untouched', async () => {
    const other = await Cluster.create({});
    try {
      other.stopSync('fast');
      const refused = await pgsnap(
        [
          'restore',
          '--backup-id',
          backup.backupId,
          '--pgdata',
          other.dataDir,
          '--json',
          ...backup.repo.flags,
        ],
        backup.repo.env,
      );
      expect(refused.code).toBe(3);
      const [sourceId] = await backup.source.query<{ id: string }>(
        'SELECT system_identifier::text AS id FROM pg_control_system()',
      );
      expect(refused.stderr).toContain(
        `but backup ${backup.backupId} was taken of orders-db (system identifier ${sourceId!.id})`,
      );
      expect(existsSync(join(other.dataDir, 'backup_label'))).toBe(false);
      expect(existsSync(join(other.dataDir, 'recovery.signal'))).toBe(false);
    } finally {
      other.destroy();
    }
  });

  it('refuses a target before the consistency point, saying why', async () => {
    const flags = [
      'restore',
      '--backup-id',
      backup.backupId,
      '--pgdata',
      backup.snapshot,
      ...backup.repo.flags,
    ];
    const byLsn = await pgsnap([...flags, '--target-lsn', backup.startLsn], backup.repo.env);
    expect(byLsn.code).toBe(3);
    expect(byLsn.stderr).toContain(
      `--target-lsn ${backup.startLsn} is before the backup's consistency point (${backup.stopLsn}`,
    );
    const byTime = await pgsnap([...flags, '--target-time', '2020-01-01T00:00:00Z'], backup.repo.env);
    expect(byTime.code).toBe(3);
    expect(byTime.stderr).toContain("is before the backup's consistency point");
    const both = await pgsnap([...flags, '--target', 'immediate', '--target-name', 'x'], backup.repo.env);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('cannot specify both --target-name and --target');
    const noZone = await pgsnap([...flags, '--target-time', '2030-01-01 10:00'], backup.repo.env);
    expect(noZone.code).toBe(2);
    // Nothing was written into the snapshot by any refusal.
    expect(existsSync(join(backup.snapshot, 'backup_label'))).toBe(false);
  });

  it('refuses a data directory a server is running in', async () => {
    const flags = [
      'restore',
      '--backup-id',
      backup.backupId,
      '--pgdata',
      backup.source.dataDir,
      ...backup.repo.flags,
    ];
    const refused = await pgsnap(flags, backup.repo.env);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/a server \(pid \d+\) is running in/);
    expect(existsSync(join(backup.source.dataDir, 'backup_label'))).toBe(false);
  });

  it.skipIf(notRoot !== undefined)(
    'run as root, follows no link that postgres planted in the restored copy, and leaves their targets unchanged',
    async () => {
      const root = ownedDir(join(backup.source.root, 'planted'));
      const data = join(root, 'data');
      await run('cp', ['-a', backup.snapshot, data]);
      // What root owns and postgres must not reach through the restore.
      const victim = mkdtempSync(join(tmpdir(), 'pgsnap-victim-'));
      try {
        const secret = join(victim, 'secret');
        writeFileSync(secret, 'root only\n', { mode: 0o600 });
        const kept = join(victim, 'dir');
        mkdirSync(kept);
        writeFileSync(join(kept, 'keep'), 'still here');
        // postgres (a superuser's COPY ... TO PROGRAM) plants the links before the backup is restored.
        asPostgres('rm', ['-rf', join(data, 'postgresql.auto.conf'), join(data, 'pg_stat_tmp')]);
        asPostgres('ln', ['-s', secret, join(data, 'postgresql.auto.conf')]);
        asPostgres('ln', ['-s', kept, join(data, 'pg_stat_tmp')]);
        const restore = ['restore', '--backup-id', backup.backupId, '--pgdata', data, ...backup.repo.flags];

        const refused = await pgsnap(restore, backup.repo.env);
        expect(refused.code, refused.stderr).toBe(3);
        expect(refused.stderr).toContain(`${join(data, 'postgresql.auto.conf')} is a symbolic link`);
        expect(readFileSync(secret, 'utf8')).toBe('root only\n');
        expect(statSync(secret).uid).toBe(0);
        expect(readFileSync(join(kept, 'keep'), 'utf8')).toBe('still here');
        // The planted pg_stat_tmp became an empty directory of the server's, its target untouched.
        expect(lstatSync(join(data, 'pg_stat_tmp')).isDirectory()).toBe(true);

        // pg_wal may be a link (a WAL volume), but only to a directory of the data directory's owner.
        asPostgres('rm', ['-f', join(data, 'postgresql.auto.conf')]);
        asPostgres('rm', ['-rf', join(data, 'pg_wal')]);
        asPostgres('ln', ['-s', kept, join(data, 'pg_wal')]);
        const walRefused = await pgsnap(restore, backup.repo.env);
        expect(walRefused.code, walRefused.stderr).toBe(3);
        expect(walRefused.stderr).toContain(
          `${join(data, 'pg_wal')} links to ${kept}, which is not a directory`,
        );
        expect(readFileSync(join(kept, 'keep'), 'utf8')).toBe('still here');
        expect(statSync(kept).uid).toBe(0);
      } finally {
        rmSync(victim, { recursive: true, force: true });
      }
    },
  );
});
