/**
 * `pgsnap restore --restore-id` on a target host, as the restore state
 * machine runs it: a backup of a real cluster with a tablespace, in a file://
 * repository; its "volumes" (copies taken inside the backup) handed to the
 * host through PGSNAP_LOCAL_VOLUMES as the local EC2 attaches them; a restore
 * record in the repository that says where they go (below a mountRoot), what
 * to recover to and what to check. Then the cluster comes up with the rows a
 * user expects and a host report, and every way it must refuse or fail does.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newRestoreId } from '#domain/ids';
import type { HostReport } from '#domain/repository/host-report';
import type { RestoreRecord } from '#domain/repository/restore-record';
import { TaskFailure, TaskTokenEndpoint } from '../../local/task-token-endpoint.ts';
import { Cluster, chownTree, freePort, ownedDir } from '../support/cluster.ts';
import { pgsnap, pgsnapBin } from '../support/pgsnap.ts';
import { type TestRepository, testRepository } from '../support/repository.ts';

const run = promisify(execFile);
const notRoot = process.getuid?.() === 0 ? undefined : 'bind mounts and runuser need root';
if (notRoot && process.env.CI) throw new Error(`CI must run the on-host restore tests, but ${notRoot}`);
if (notRoot) console.warn(`SKIPPING the on-host restore tests: ${notRoot}`);

interface Backup {
  source: Cluster;
  repo: TestRepository;
  backupId: string;
  tablespaceDir: string;
  tablespaceOid: string;
  /** The copies taken inside the backup: what EBS snapshots would hold. */
  snapshots: { data: string; tablespace: string };
  work: string;
}

let backup: Backup;

/** 100 rows (60 before the copy, 40 during the backup), a restore point, then 50 rows more. */
async function takeBackup(): Promise<Backup> {
  const work = mkdtempSync(join(tmpdir(), 'pgsnap-host-restore-'));
  chmodSync(work, 0o711);
  const repo = testRepository('file');
  const source = await Cluster.create({ settings: { archive_command: repo.archiveCommand() } });
  const tablespaceDir = ownedDir(join(source.root, 'ts'));
  await source.query(`CREATE TABLESPACE ts LOCATION '${tablespaceDir}'`);
  await source.query('CREATE TABLE t (id bigint PRIMARY KEY, note text) TABLESPACE ts');
  await source.query("INSERT INTO t SELECT g, 'before the copy' FROM generate_series(1, 60) g");
  const env = { ...source.env, PGSNAP_STATE_DIR: join(source.root, 'state') };
  const begun = await pgsnap(['begin', '--label', 'host restore', '--fast', '--json', ...repo.flags], env);
  expect(begun.code, begun.stderr).toBe(0);
  const snapshots = { data: join(work, 'snap-data'), tablespace: join(work, 'snap-ts') };
  await run('cp', ['-a', source.dataDir, snapshots.data]);
  await run('cp', ['-a', tablespaceDir, snapshots.tablespace]);
  await source.query("INSERT INTO t SELECT g, 'during the backup' FROM generate_series(61, 100) g");
  const ended = await pgsnap(['end', '--snapshot', snapshots.data, '--json', ...repo.flags], env);
  expect(ended.code, ended.stderr).toBe(0);
  await source.query("SELECT pg_create_restore_point('before-the-mistake')");
  await source.query("INSERT INTO t SELECT g, 'the mistake' FROM generate_series(101, 150) g");
  await source.query('SELECT pg_switch_wal()');
  for (let i = 0; i < 200; i++) {
    const [row] = await source.query<{ n: string }>(
      "SELECT count(*) AS n FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'",
    );
    if (Number(row!.n) === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const [ts] = await source.query<{ oid: string }>(
    "SELECT oid::text FROM pg_tablespace WHERE spcname = 'ts'",
  );
  return {
    source,
    repo,
    backupId: begun.json!.backupId as string,
    tablespaceDir,
    tablespaceOid: ts!.oid,
    snapshots,
    work,
  };
}

beforeAll(async () => {
  if (!notRoot) backup = await takeBackup();
}, 120_000);
afterAll(() => {
  backup?.source.destroy();
  backup?.repo.destroy();
  if (backup && !process.env.PGSNAP_KEEP_TEST_DIRS) rmSync(backup.work, { recursive: true, force: true });
});

const volumeIds = { data: 'vol-0000000000000d001', tablespace: 'vol-0000000000000d002' };

interface Attached {
  restoreId: string;
  mountRoot: string;
  port: number;
  env: NodeJS.ProcessEnv;
  flags: string[];
}

/**
 * What the restore state machine has done before it asks the host: volumes
 * made from the snapshots (fresh copies) and attached (listed in the local
 * volumes file), and the restore record written.
 */
async function attach(name: string, record: Partial<RestoreRecord>): Promise<Attached> {
  const dir = join(backup.work, name);
  mkdirSync(dir, { mode: 0o711 });
  const volumes = { data: join(dir, 'vol-data'), tablespace: join(dir, 'vol-ts') };
  await run('cp', ['-a', backup.snapshots.data, volumes.data]);
  await run('cp', ['-a', backup.snapshots.tablespace, volumes.tablespace]);
  const localVolumes = join(dir, 'local-volumes.json');
  writeFileSync(
    localVolumes,
    JSON.stringify({
      volumes: [
        { volumeId: volumeIds.data, path: volumes.data },
        { volumeId: volumeIds.tablespace, path: volumes.tablespace },
      ],
    }),
  );
  const restoreId = newRestoreId();
  const mountRoot = join(dir, 'mnt');
  const port = await freePort();
  const now = new Date().toISOString();
  const volume = (role: 'data' | 'tablespace', path: string) => ({
    holds: [{ role, path, ...(role === 'tablespace' ? { tablespaceOid: backup.tablespaceOid } : {}) }],
    mountPoint: path,
    fstype: 'dir',
    sizeGiB: 1,
    volumeType: 'gp3',
    encrypted: false,
    availabilityZone: 'local-1a',
  });
  const full: RestoreRecord = {
    schemaVersion: 1,
    restoreId,
    cluster: backup.repo.cluster,
    backupId: backup.backupId,
    mode: 'drill',
    state: 'attached',
    checks: { amcheck: 'all' },
    mountRoot,
    port,
    repository: backup.repo.url,
    volumes: [
      {
        snapshotId: 'snap-0000000000000d001',
        volumeId: volumeIds.data,
        source: volume('data', backup.source.dataDir),
      },
      {
        snapshotId: 'snap-0000000000000d002',
        volumeId: volumeIds.tablespace,
        source: volume('tablespace', backup.tablespaceDir),
      },
    ],
    timings: { requestedAt: now },
    updatedAt: now,
    ...record,
  };
  const repository = await backup.repo.open();
  try {
    await repository.writeRestoreRecord(full);
  } finally {
    repository.close();
  }
  return {
    restoreId,
    mountRoot,
    port,
    env: {
      PGHOST: '127.0.0.1',
      PGUSER: 'postgres',
      PGDATABASE: 'postgres',
      PGSNAP_LOCAL_VOLUMES: localVolumes,
    },
    flags: ['--restore-id', restoreId, ...backup.repo.flags, '--json'],
  };
}

function mountsUnder(dir: string): string[] {
  const listed = JSON.parse(
    execFileSync('findmnt', ['--json', '--list', '--output', 'TARGET'], { encoding: 'utf8' }),
  ) as {
    filesystems: Array<{ target: string }>;
  };
  return listed.filesystems.map((fs) => fs.target).filter((target) => target.startsWith(`${dir}/`));
}

async function teardown(attached: Attached): Promise<void> {
  const result = await pgsnap(['unmount', '--stop-server', ...attached.flags], attached.env);
  expect(result.code, result.stderr).toBe(0);
  expect(mountsUnder(attached.mountRoot)).toEqual([]);
}

async function rowsIn(attached: Attached): Promise<number> {
  const client = await import('pg').then(
    (pg) =>
      new pg.default.Client({
        host: '127.0.0.1',
        port: attached.port,
        user: 'postgres',
        database: 'postgres',
      }),
  );
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM t');
    return Number(rows[0]!.n);
  } finally {
    await client.end();
  }
}

describe.skipIf(notRoot !== undefined)('pgsnap restore --restore-id', () => {
  it('mounts the volumes below mountRoot, recovers to the restore point, checks, and unmount takes it all away', async () => {
    const attached = await attach('pitr', {
      target: { name: 'before-the-mistake' },
      checks: {
        amcheck: 'all',
        sql: { database: 'postgres', query: 'SELECT count(*) FROM t', expect: '100' },
      },
    });
    try {
      const restored = await pgsnap(['restore', ...attached.flags], attached.env, { timeoutMs: 120_000 });
      expect(restored.code, restored.stderr).toBe(0);
      const report = restored.json as unknown as HostReport;
      const pgdata = join(attached.mountRoot, backup.source.dataDir);
      expect(report).toMatchObject({
        ok: true,
        pgdata,
        mounts: [
          { volumeId: volumeIds.data, mountPoint: pgdata, options: 'bind,nosuid,nodev,noexec' },
          {
            volumeId: volumeIds.tablespace,
            mountPoint: join(attached.mountRoot, backup.tablespaceDir),
            options: 'bind,nosuid,nodev,noexec',
          },
        ],
        checks: {
          consistency: { ok: true },
          amcheck: { ok: true },
          checksums: { ok: true },
          sql: { ok: true, detail: expect.stringContaining('returned "100"') },
        },
      });
      for (const key of [
        'mountedAt',
        'preparedAt',
        'startedAt',
        'consistentAt',
        'targetReachedAt',
        'acceptingAt',
      ]) {
        expect(report.timings, key).toHaveProperty(key);
      }
      expect(report.lastReplayedCommit).toBeDefined();
      expect(report.replayLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
      // The rows a user expects: everything committed before the restore point, none of the mistake.
      expect(await rowsIn(attached)).toBe(100);
      // The table lives in the tablespace, now on its own volume below mountRoot, not the source's.
      expect(mountsUnder(attached.mountRoot).sort()).toEqual(
        [pgdata, join(attached.mountRoot, backup.tablespaceDir)].sort(),
      );

      // The same restore again (a retry after a lost answer): it finds its server running and reports again.
      const retried = await pgsnap(['restore', ...attached.flags], attached.env, { timeoutMs: 120_000 });
      expect(retried.code, retried.stderr).toBe(0);
      expect(retried.json).toMatchObject({ ok: true, pgdata, checks: { sql: { ok: true } } });
      expect((retried.json as unknown as HostReport).timings.startedAt).toBeUndefined();

      // mount again while it runs: the volumes are already there, from the same sources.
      const again = await pgsnap(['mount', ...attached.flags], attached.env);
      expect(again.code, again.stderr).toBe(0);
      expect(again.json).toMatchObject({ mounts: [{ already: true }, { already: true }] });

      // A server still running is not unmounted from under.
      const refused = await pgsnap(['unmount', ...attached.flags], attached.env);
      expect(refused.code).toBe(3);
      expect(refused.stderr).toContain('--stop-server');

      const unmounted = await pgsnap(['unmount', '--stop-server', ...attached.flags], attached.env);
      expect(unmounted.code, unmounted.stderr).toBe(0);
      expect(unmounted.json).toMatchObject({
        server: 'stopped',
        volumes: [{ action: 'unmounted' }, { action: 'unmounted' }],
      });
      expect(mountsUnder(attached.mountRoot)).toEqual([]);
      const twice = await pgsnap(
        ['unmount', '--stop-server', ...attached.flags.filter((f) => f !== '--json')],
        attached.env,
      );
      expect(twice.code, twice.stderr).toBe(0);
      expect(twice.stdout).toContain('nothing of this restore was mounted');
    } finally {
      await teardown(attached);
    }
  });

  it('reports a failing SQL check with ok false and what it found, through SendTaskSuccess', async () => {
    const attached = await attach('sql-check', {
      target: { immediate: true },
      checks: {
        amcheck: 'none',
        sql: { database: 'postgres', query: 'SELECT count(*) FROM t', expect: '999' },
      },
    });
    const endpoint = await TaskTokenEndpoint.start();
    try {
      const answer = endpoint.answerFor('token-sql-check');
      const restored = await pgsnap(['restore', ...attached.flags], {
        ...attached.env,
        ...endpoint.env,
        PGSNAP_TASK_TOKEN: 'token-sql-check',
      });
      // The restore went through: the state machine gets the report and judges it.
      const report = (await answer) as HostReport;
      expect(report).toMatchObject({
        ok: false,
        checks: {
          consistency: { ok: true },
          sql: { ok: false, detail: expect.stringMatching(/returned "(60|100)", expected "999"/) },
        },
      });
      expect(report.checks.amcheck).toBeUndefined();
      expect(restored.json).toMatchObject({ ok: false });
      expect(restored.code).toBe(1);
    } finally {
      await endpoint.close();
      await teardown(attached);
    }
  });

  it('fails with RecoveryTargetNotReachedError, quoting the server, when the target is beyond the end of the WAL', async () => {
    const attached = await attach('beyond', { target: { time: '2099-01-01T00:00:00Z' } });
    const endpoint = await TaskTokenEndpoint.start();
    try {
      const answer = endpoint.answerFor('token-beyond').then(
        () => undefined,
        (error: unknown) => error as TaskFailure,
      );
      const restored = await pgsnap(['restore', ...attached.flags], {
        ...attached.env,
        ...endpoint.env,
        PGSNAP_TASK_TOKEN: 'token-beyond',
      });
      expect(restored.code).toBe(1);
      expect(restored.json).toMatchObject({ error: { name: 'RecoveryTargetNotReachedError' } });
      expect(restored.stderr).toContain('recovery ended before configured recovery target was reached');
      const failure = await answer;
      expect(failure).toBeInstanceOf(TaskFailure);
      expect(failure).toMatchObject({ name: 'RecoveryTargetNotReachedError' });
    } finally {
      await endpoint.close();
      await teardown(attached);
    }
  });

  it('refuses a mount point that is in use, mounting nothing, and says what to do', async () => {
    const attached = await attach('in-use', { target: { immediate: true } });
    const taken = join(attached.mountRoot, backup.tablespaceDir);
    mkdirSync(taken, { recursive: true });
    writeFileSync(join(taken, 'someone-elses-file'), 'keep me');
    try {
      const restored = await pgsnap(['restore', ...attached.flags], attached.env);
      expect(restored.code).toBe(3);
      expect(restored.json).toMatchObject({ error: { name: 'MountPointInUseError' } });
      expect(restored.stderr).toContain(
        `mount point ${taken} for volume ${volumeIds.tablespace} is not empty`,
      );
      expect(restored.stderr).toContain('someone-elses-file');
      expect(readdirSync(taken)).toEqual(['someone-elses-file']);
    } finally {
      await teardown(attached);
    }
    // The cleanup path took away what was mounted before the refusal, and left the operator's file.
    expect(existsSync(join(taken, 'someone-elses-file'))).toBe(true);
  });

  it('brings up a standby of the running source, replayed past the backup, following its primary', async () => {
    const attached = await attach('standby', {
      mode: 'standby',
      primaryConninfo: `host=127.0.0.1 port=${backup.source.port} user=postgres application_name=restored`,
      checks: {
        amcheck: 'none',
        sql: { database: 'postgres', query: 'SELECT count(*) >= 100 FROM t', expect: 't' },
      },
    });
    try {
      const restored = await pgsnap(['restore', ...attached.flags], attached.env, { timeoutMs: 120_000 });
      expect(restored.code, restored.stderr).toBe(0);
      expect(restored.json).toMatchObject({
        ok: true,
        checks: { sql: { ok: true }, checksums: { ok: true } },
      });
      // Still a standby, set to follow the source.
      const client = await import('pg').then(
        (pg) =>
          new pg.default.Client({
            host: '127.0.0.1',
            port: attached.port,
            user: 'postgres',
            database: 'postgres',
          }),
      );
      await client.connect();
      try {
        expect((await client.query('SELECT pg_is_in_recovery() AS r')).rows[0].r).toBe(true);
        expect((await client.query('SHOW primary_conninfo')).rows[0].primary_conninfo).toContain(
          `port=${backup.source.port}`,
        );
      } finally {
        await client.end();
      }
    } finally {
      await teardown(attached);
    }
  });

  it('as a user who cannot mount, links each local volume at its mount point, and unmount removes the links', async () => {
    const attached = await attach('non-root', {});
    chownTree(join(backup.work, 'non-root'));
    const asPostgresUser = (command: string[]) =>
      spawnSync(
        'runuser',
        [
          '-u',
          'postgres',
          '--',
          'env',
          `PGSNAP_LOCAL_VOLUMES=${attached.env.PGSNAP_LOCAL_VOLUMES}`,
          process.execPath,
          pgsnapBin,
          ...command,
        ],
        { encoding: 'utf8', cwd: '/' },
      );
    const target = join(attached.mountRoot, backup.source.dataDir);
    const mounted = asPostgresUser(['mount', ...attached.flags]);
    expect(mounted.status, mounted.stderr).toBe(0);
    expect(JSON.parse(mounted.stdout)).toMatchObject({
      mounts: [
        {
          volumeId: volumeIds.data,
          device: join(backup.work, 'non-root', 'vol-data'),
          mountPoint: target,
          options: 'symlink',
        },
        { volumeId: volumeIds.tablespace, options: 'symlink' },
      ],
    });
    expect(readlinkSync(target)).toBe(join(backup.work, 'non-root', 'vol-data'));
    expect(mountsUnder(attached.mountRoot)).toEqual([]);
    const again = asPostgresUser(['mount', ...attached.flags]);
    expect(JSON.parse(again.stdout)).toMatchObject({ mounts: [{ already: true }, { already: true }] });
    const unmounted = asPostgresUser(['unmount', ...attached.flags]);
    expect(unmounted.status, unmounted.stderr).toBe(0);
    expect(JSON.parse(unmounted.stdout)).toMatchObject({
      volumes: [{ action: 'unlinked' }, { action: 'unlinked' }],
    });
    expect(existsSync(target)).toBe(false);
    // The volumes themselves are untouched.
    expect(existsSync(join(backup.work, 'non-root', 'vol-data', 'PG_VERSION'))).toBe(true);
  });

  it('begin --volumes names the local volumes that hold the cluster, with what a restore record needs', async () => {
    const dir = join(backup.work, 'begin');
    mkdirSync(dir, { mode: 0o711 });
    const localVolumes = join(dir, 'local-volumes.json');
    writeFileSync(
      localVolumes,
      JSON.stringify({
        volumes: [
          { volumeId: volumeIds.data, path: backup.source.dataDir },
          { volumeId: volumeIds.tablespace, path: backup.tablespaceDir },
        ],
      }),
    );
    const env = {
      ...backup.source.env,
      PGSNAP_STATE_DIR: join(dir, 'state'),
      PGSNAP_LOCAL_VOLUMES: localVolumes,
    };
    const begun = await pgsnap(['begin', '--label', 'volumes', '--volumes', '--json'], env);
    try {
      expect(begun.code, begun.stderr).toBe(0);
      expect(begun.json).toMatchObject({
        problems: [],
        volumes: [
          {
            volumeId: volumeIds.data,
            disk: 'dir',
            holds: ['pgdata', 'pg_wal'],
            mountPoint: backup.source.dataDir,
            paths: [
              { role: 'data', path: backup.source.dataDir },
              { role: 'wal', path: join(backup.source.dataDir, 'pg_wal') },
            ],
          },
          {
            volumeId: volumeIds.tablespace,
            holds: ['tablespace ts'],
            mountPoint: backup.tablespaceDir,
            paths: [{ role: 'tablespace', path: backup.tablespaceDir, tablespaceOid: backup.tablespaceOid }],
          },
        ],
      });
    } finally {
      const aborted = await pgsnap(['abort', '--backup-id', String(begun.json?.backupId)], env);
      expect(aborted.code, aborted.stderr).toBe(0);
    }
  });

  it('refuses a volume that is not attached, naming it', async () => {
    const attached = await attach('missing', { target: { immediate: true } });
    const missing = 'vol-0000000000000dfff';
    const repository = await backup.repo.open();
    try {
      const record = (await repository.readRestoreRecord(attached.restoreId))!;
      record.volumes[1]!.volumeId = missing;
      await repository.writeRestoreRecord(record);
    } finally {
      repository.close();
    }
    try {
      const mounted = await pgsnap(['mount', ...attached.flags], attached.env);
      expect(mounted.code).toBe(3);
      expect(mounted.json).toMatchObject({ error: { name: 'VolumeNotFoundError' } });
      expect(mounted.stderr).toContain(`volume ${missing} is not attached to this host`);
    } finally {
      await teardown(attached);
    }
  });
});
