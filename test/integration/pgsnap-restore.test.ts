/**
 * `pgsnap restore` on a data directory restored from a snapshot, driven from a
 * file:// repository: point in time to a named restore point with both
 * tablespaces moved, and the refusals that keep an operator from restoring
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
import { runAmcheck } from '../../agent/restore/checks.ts';
import { asPostgres, Cluster, chownTree, ownedDir } from '../support/cluster.ts';
import { pgsnap } from '../support/pgsnap.ts';
import { privateCheckout } from '../support/private-checkout.ts';
import { type TestRepository, testRepository } from '../support/repository.ts';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;
if (!isRoot) {
  console.warn(
    "SKIPPING the restore_command reachability refusal: only root runs pgsnap where the data directory's owner cannot",
  );
}

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
  /** The copies of the two tablespaces, by tablespace OID. */
  tablespaceSnapshots: Record<string, string>;
  rowsAtRestorePoint: number;
}

/**
 * A backup of a cluster with two tablespaces (table t in ts, its primary key
 * index in ts_index), 100 rows, a restore point, then 50 more rows.
 */
async function takeBackup(): Promise<Backup> {
  const repo = testRepository('file');
  const source = await Cluster.create({ settings: { archive_command: repo.archiveCommand() } });
  const tablespaceDirs = {
    ts: ownedDir(join(source.root, 'ts')),
    ts_index: ownedDir(join(source.root, 'ts_index')),
  };
  for (const [name, dir] of Object.entries(tablespaceDirs)) {
    await source.query(`CREATE TABLESPACE ${name} LOCATION '${dir}'`);
  }
  await source.query('CREATE TABLE t (id bigint PRIMARY KEY USING INDEX TABLESPACE ts_index) TABLESPACE ts');
  await source.query('INSERT INTO t SELECT generate_series(1, 60)');
  const env = { ...source.env, PGSNAP_STATE_DIR: join(source.root, 'state') };
  const begun = await pgsnap(['begin', '--label', 'restore tests', '--fast', '--json', ...repo.flags], env);
  expect(begun.code, begun.stderr).toBe(0);
  const snapshot = join(ownedDir(join(source.root, 'snapshot')), 'data');
  await run('cp', ['-a', source.dataDir, snapshot]);
  for (const [name, dir] of Object.entries(tablespaceDirs)) {
    await run('cp', ['-a', dir, join(source.root, 'snapshot', name)]);
  }
  await source.query('INSERT INTO t SELECT generate_series(61, 100)');
  const ended = await pgsnap(['end', '--snapshot', snapshot, '--json', ...repo.flags], env);
  expect(ended.code, ended.stderr).toBe(0);
  await source.query("SELECT pg_create_restore_point('before-the-mistake')");
  await source.query('INSERT INTO t SELECT generate_series(101, 150)');
  await source.query('SELECT pg_switch_wal()');
  const tablespaces = await source.query<{ oid: string; name: string }>(
    "SELECT oid::text, spcname AS name FROM pg_tablespace WHERE spcname IN ('ts', 'ts_index')",
  );
  return {
    source,
    repo,
    env,
    backupId: begun.json!.backupId as string,
    startLsn: begun.json!.startLsn as string,
    stopLsn: ended.json!.stopLsn as string,
    snapshot,
    tablespaceSnapshots: Object.fromEntries(
      tablespaces.map(({ oid, name }) => [oid, join(source.root, 'snapshot', name)]),
    ),
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
  it('recovers to a named restore point from the repository, with both tablespaces in new places', async () => {
    const root = ownedDir(join(backup.source.root, 'pitr'));
    await run('cp', ['-a', backup.snapshot, join(root, 'data')]);
    // The new places: ts-<oid>, beside the restored data directory, neither where the source has it.
    const moved = Object.entries(backup.tablespaceSnapshots).map(([oid, copy]) => ({
      oid,
      copy,
      to: join(root, `ts-${oid}`),
    }));
    expect(moved).toHaveLength(2);
    for (const { copy, to } of moved) await run('cp', ['-a', copy, to]);
    const restored = await pgsnap(
      [
        'restore',
        '--backup-id',
        backup.backupId,
        '--pgdata',
        join(root, 'data'),
        ...moved.flatMap(({ oid, to }) => ['--tablespace', `${oid}=${to}`]),
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
    const map = readFileSync(join(root, 'data', 'tablespace_map'), 'utf8');
    expect(map.split('\n').filter(Boolean).sort()).toEqual(moved.map(({ oid, to }) => `${oid} ${to}`).sort());
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
      // The rows through the index in the other tablespace, and both in their new places.
      const client = await cluster.client();
      try {
        await client.query('SET enable_seqscan = off');
        const plan = await client.query<{ 'QUERY PLAN': string }>('EXPLAIN SELECT id FROM t WHERE id = 42');
        expect(plan.rows.map((r) => r['QUERY PLAN']).join('\n')).toContain('t_pkey');
        expect((await client.query('SELECT id FROM t WHERE id = 42')).rows).toEqual([{ id: '42' }]);
      } finally {
        await client.end();
      }
      const locations = await cluster.query<{ oid: string; location: string }>(
        "SELECT oid::text, pg_tablespace_location(oid) AS location FROM pg_tablespace WHERE spcname IN ('ts', 'ts_index')",
      );
      expect(locations.map(({ oid, location }) => `${oid} ${location}`).sort()).toEqual(
        moved.map(({ oid, to }) => `${oid} ${to}`).sort(),
      );
      const amcheck = runAmcheck(cluster);
      expect(amcheck?.ok, amcheck?.output).toBe(true);
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

  it.skipIf(!isRoot)(
    "refuses, as root, a restore_command that the data directory's owner could not run, saying what to do",
    async () => {
      // A checkout under a 0700 directory, as a clone under /root is; Node.js from nvm under it too.
      const checkout = privateCheckout();
      try {
        const flags = [
          'restore',
          '--backup-id',
          backup.backupId,
          '--pgdata',
          backup.snapshot,
          ...backup.repo.flags,
        ];
        const theirNode = await pgsnap(flags, backup.repo.env, { bin: checkout.bin, node: checkout.node });
        expect(theirNode.code, theirNode.stderr).toBe(3);
        expect(theirNode.stderr).toContain(
          `PostgreSQL runs restore_command as postgres, who cannot enter ${checkout.home} (drwx------ root:root)`,
        );
        expect(theirNode.stderr).toContain(
          `Node.js is at ${checkout.node}: install Node.js where postgres can run it`,
        );
        const systemNode = await pgsnap(flags, backup.repo.env, { bin: checkout.bin });
        expect(systemNode.code, systemNode.stderr).toBe(3);
        expect(systemNode.stderr).toContain(`who cannot enter ${checkout.home}`);
        expect(systemNode.stderr).toContain(
          'install the agent where postgres can reach it (tar -xzf dist/pgsnap-agent.tar.gz -C /usr/local',
        );
        // Refused before anything was written: the server was never given a line it cannot run.
        expect(existsSync(join(backup.snapshot, 'backup_label'))).toBe(false);
        expect(existsSync(join(backup.snapshot, 'recovery.signal'))).toBe(false);
      } finally {
        checkout.destroy();
      }
    },
  );

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
