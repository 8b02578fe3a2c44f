/**
 * A restore target treats the restored volumes and the restore record as
 * hostile (issue 28): both come from a database host, whose PostgreSQL
 * superuser can write anything there. Each test replays one attack against
 * the real agent, run as root, with real PostgreSQL and real mounts, and
 * checks what a defender would: nothing mounted or made outside mountRoot,
 * nothing handed over through a link, no content quoted, no root privilege
 * from a restored file, no secret in the restored server's environment.
 */
import { execFileSync } from 'node:child_process';
import {
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverUid } from '../support/cluster.ts';
import { pgsnap } from '../support/pgsnap.ts';
import {
  type Backup,
  mountsBelow,
  rewriteRecordRaw,
  skipReason,
  type Target,
  takeBackup,
  target,
  unmountBelow,
  volumeRecord,
  walVolumeId,
} from './hostile-restore.ts';

const skip = skipReason('the hostile restore-target tests');

let backup: Backup;
const targets: Target[] = [];

beforeAll(async () => {
  if (!skip) backup = await takeBackup();
}, 120_000);

afterAll(async () => {
  for (const t of targets.reverse()) {
    await pgsnap(['unmount', '--stop-server', ...t.flags], t.env).catch(() => undefined);
    unmountBelow(t.dir);
  }
  backup?.source.destroy();
  backup?.repo.destroy();
  if (backup && !process.env.PGSNAP_KEEP_TEST_DIRS) rmSync(backup.work, { recursive: true, force: true });
});

async function targetFor(name: string, options: Parameters<typeof target>[2] = {}): Promise<Target> {
  const t = await target(backup, name, options);
  targets.push(t);
  return t;
}

function errorOf(result: { json: Record<string, unknown> | undefined }): { name?: string; message?: string } {
  return (result.json?.error ?? {}) as { name?: string; message?: string };
}

describe.skipIf(skip !== undefined)('a restore target refuses what a hostile host wrote', () => {
  it('refuses a mount point with a newline, which would climb out of mountRoot once normalised', async () => {
    const t = await targetFor('newline');
    const escaped = join(t.dir, 'escaped');
    // "/x\n/../../escaped": `.` in the old path regex stops at the newline, normalize() resolves the `..`.
    const climb = `/x\n/${'../'.repeat(2)}escaped`;
    rewriteRecordRaw(backup, t.restoreId, {
      ...t.record,
      volumes: [{ ...t.record.volumes[0], source: volumeRecord('data', climb, climb) }],
    });
    const refused = await pgsnap(['mount', ...t.flags], t.env);
    expect(refused.code, refused.stdout).not.toBe(0);
    expect(existsSync(escaped)).toBe(false);
    expect(mountsBelow(t.dir)).toEqual([]);
  });

  it('refuses a mountRoot with .. segments, which would put the mount elsewhere', async () => {
    const t = await targetFor('dotdot');
    const elsewhere = join(t.dir, 'elsewhere');
    rewriteRecordRaw(backup, t.restoreId, { ...t.record, mountRoot: `${t.mountRoot}/../elsewhere` });
    const refused = await pgsnap(['mount', ...t.flags], t.env);
    expect(refused.code, refused.stdout).not.toBe(0);
    expect(existsSync(elsewhere)).toBe(false);
    expect(mountsBelow(t.dir)).toEqual([]);
  });

  it('never makes or hands over a directory through a link in the WAL volume', async () => {
    // A directory of root's that the restore must not give to postgres.
    const t0 = `${Date.now()}`;
    const victim = join(backup.work, `root-only-${t0}`);
    mkdirSync(victim, { mode: 0o700 });
    const walVolume = join(backup.work, `wal-volume-${t0}`);
    mkdirSync(walVolume, { mode: 0o755 });
    chownSync(walVolume, serverUid(), serverUid());
    // On the WAL volume, the pg_wal the manifest names is a link to the victim.
    symlinkSync(victim, join(walVolume, 'pg_wal'));
    const t = await targetFor('wal-link', {
      volumes: { [walVolumeId]: { path: walVolume } },
      record: () => ({
        volumes: [
          {
            snapshotId: 'snap-0000000000000f001',
            volumeId: 'vol-0000000000000f001',
            source: volumeRecord('data', '/srv/pg/data'),
          },
          {
            snapshotId: 'snap-0000000000000f002',
            volumeId: walVolumeId,
            source: volumeRecord('wal', '/srv/wal/pg_wal', '/srv/wal'),
          },
        ],
      }),
    });
    const refused = await pgsnap(['restore', ...t.flags], t.env, { timeoutMs: 120_000 });
    expect(refused.code, refused.stdout).not.toBe(0);
    expect(errorOf(refused).name).toBe('UnsafeRestorePathError');
    expect(statSync(victim).uid).toBe(0);
    expect(statSync(victim).mode & 0o777).toBe(0o700);
  });

  it('refuses a PGDATA reached through a link on the data volume, writing nothing where it points', async () => {
    const elsewhere = join(backup.work, `another-pgdata-${Date.now()}`);
    execFileSync('cp', ['-a', backup.snapshot, elsewhere]);
    const t = await targetFor('pgdata-link', {
      record: () => ({
        volumes: [
          {
            snapshotId: 'snap-0000000000000f001',
            volumeId: 'vol-0000000000000f001',
            source: volumeRecord('data', '/srv/pg/data/main', '/srv/pg/data'),
          },
        ],
      }),
    });
    // The data volume's "main" is a link to another data directory of this host.
    symlinkSync(elsewhere, join(t.dir, 'vol-data', 'main'));
    const refused = await pgsnap(['restore', ...t.flags], t.env, { timeoutMs: 120_000 });
    expect(refused.code, refused.stdout).not.toBe(0);
    expect(errorOf(refused).name).toBe('UnsafeRestorePathError');
    expect(existsSync(join(elsewhere, 'recovery.signal'))).toBe(false);
    expect(existsSync(join(elsewhere, 'backup_label'))).toBe(false);
  });

  it('refuses a PG_VERSION that is a path, and never runs a pg_ctl it would choose', async () => {
    const evil = join(backup.work, `evil-${Date.now()}`);
    mkdirSync(join(evil, 'bin'), { recursive: true });
    const ran = join(evil, 'ran');
    writeFileSync(join(evil, 'bin', 'pg_ctl'), `#!/bin/sh\ntouch ${ran}\n`, { mode: 0o755 });
    const t = await targetFor('pg-version-path');
    // /usr/lib/postgresql/<PG_VERSION>/bin: a PG_VERSION of ../../../<evil> names the evil bin directory.
    writeFileSync(join(t.dir, 'vol-data', 'PG_VERSION'), `../../..${evil}\n`);
    const refused = await pgsnap(['restore', ...t.flags], t.env, { timeoutMs: 120_000 });
    expect(refused.code, refused.stdout).not.toBe(0);
    expect(errorOf(refused).name).toBe('UnsafeRestorePathError');
    expect(`${refused.stdout}${refused.stderr}`).not.toContain(evil);
    expect(existsSync(ran)).toBe(false);
  });

  it('refuses a PG_VERSION that links to a root-only file, without quoting it', async () => {
    const secret = join(backup.work, `secret-${Date.now()}`);
    writeFileSync(secret, 'TOPSECRET-credential-42\n', { mode: 0o600 });
    const t = await targetFor('pg-version-link');
    const pgVersion = join(t.dir, 'vol-data', 'PG_VERSION');
    rmSync(pgVersion);
    symlinkSync(secret, pgVersion);
    const refused = await pgsnap(['restore', ...t.flags], t.env, { timeoutMs: 120_000 });
    expect(refused.code, refused.stdout).not.toBe(0);
    expect(errorOf(refused).name).toBe('UnsafeRestorePathError');
    expect(`${refused.stdout}${refused.stderr}`).not.toContain('TOPSECRET');
  });

  it('refuses a PGDATA that belongs to root, writing nothing into it', async () => {
    const t = await targetFor('pgdata-root');
    const data = join(t.dir, 'vol-data');
    execFileSync('chown', ['-R', 'root:root', data]);
    const refused = await pgsnap(['restore', ...t.flags], t.env, { timeoutMs: 120_000 });
    expect(refused.code, refused.stdout).not.toBe(0);
    expect(errorOf(refused).name).toBe('UnsafeRestorePathError');
    expect(existsSync(join(data, 'recovery.signal'))).toBe(false);
    expect(existsSync(join(data, 'backup_label'))).toBe(false);
  });

  it("starts the restored server without root's secrets in its environment", async () => {
    const t = await targetFor('environment');
    // What root's pgsnap.env may hold, and the instance's credentials.
    const env = {
      ...t.env,
      PGPASSWORD: 'hunter2-from-pgsnap-env',
      AWS_SECRET_ACCESS_KEY: 'aws-secret-from-env',
      AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE',
      PGSNAP_TASK_TOKEN_SECRET: 'not-for-postgres',
    };
    const restored = await pgsnap(['restore', ...t.flags], env, { timeoutMs: 120_000 });
    expect(restored.code, restored.stderr).toBe(0);
    const pgdata = join(t.mountRoot, 'srv/pg/data');
    const pid = readFileSync(join(pgdata, 'postmaster.pid'), 'utf8').split('\n')[0]!;
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
    const names = environ.map((e) => e.slice(0, e.indexOf('=')));
    expect(
      names.filter((n) => n === 'PGPASSWORD' || n.startsWith('AWS_') || n.startsWith('PGSNAP_')),
    ).toEqual([]);
    expect(environ.join('\n')).not.toContain('hunter2');
    const stopped = await pgsnap(['unmount', '--stop-server', ...t.flags], t.env);
    expect(stopped.code, stopped.stderr).toBe(0);
  });

  it('recognises a retry by the mark it wrote in its own state, not by what is on the volume', async () => {
    const t = await targetFor('retry-mark');
    const pgdata = join(t.mountRoot, 'srv/pg/data');
    const restored = await pgsnap(['restore', ...t.flags], t.env, { timeoutMs: 120_000 });
    expect(restored.code, restored.stderr).toBe(0);
    expect(readdirState(t)).toEqual([`${t.restoreId}.prepared.json`]);
    // The server went away (the host rebooted): the retry starts it again, and prepares nothing twice.
    const bin = `/usr/lib/postgresql/${readFileSync(join(pgdata, 'PG_VERSION'), 'utf8').trim()}/bin`;
    execFileSync('runuser', [
      '-u',
      'postgres',
      '--',
      join(bin, 'pg_ctl'),
      '-D',
      pgdata,
      '-m',
      'fast',
      '-w',
      'stop',
    ]);
    const retried = await pgsnap(['restore', ...t.flags], t.env, { timeoutMs: 120_000 });
    expect(retried.code, retried.stderr).toBe(0);
    const timings = (retried.json as { timings: { startedAt?: string; preparedAt?: string } }).timings;
    expect(timings.startedAt).toBeDefined();
    expect(timings.preparedAt).toBeUndefined();
    const stopped = await pgsnap(['unmount', '--stop-server', ...t.flags], t.env);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(readdirState(t)).toEqual([]);
  });
});

function readdirState(t: Target): string[] {
  const dir = join(t.env.PGSNAP_STATE_DIR!, 'restores');
  return existsSync(dir) ? execFileSync('ls', [dir], { encoding: 'utf8' }).split('\n').filter(Boolean) : [];
}
