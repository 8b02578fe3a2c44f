/**
 * A local attacker (another uid: `nobody`) against pgsnap's state and WAL
 * spools, with PostgreSQL's user (`postgres`) running pgsnap as a server
 * would: a state directory made first under a guessable name, a shared
 * --spool-dir with a segment planted in it, a pid file naming a process of
 * someone else.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { defaultStateRoot } from '../../agent/host/settings.ts';
import { restoreCommandLine } from '../../agent/wal/shell-lines.ts';
import { pgsnapBin } from '../support/pgsnap.ts';

const notRoot = process.getuid?.() === 0 ? undefined : 'they need root, to act as postgres and as nobody';
if (notRoot && process.env.CI) throw new Error(`CI must run the local attacker tests, but ${notRoot}`);
if (notRoot) console.warn(`SKIPPING the local attacker tests of the state and spools: ${notRoot}`);

function idOf(user: string): number {
  return Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
}

/** Runs `command` as `user` (runuser), with a plain environment. */
function as(user: string, command: string[], env: Record<string, string> = {}, cwd = '/') {
  return spawnSync(
    'runuser',
    [
      '-u',
      user,
      '--',
      'env',
      '-i',
      'PATH=/usr/bin:/bin',
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      ...command,
    ],
    {
      encoding: 'utf8',
      cwd,
      timeout: 60_000,
    },
  );
}

/** A directory everyone can reach, removed when the test finishes. */
function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgsnap-attacker-'));
  chmodSync(dir, 0o1777);
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('the default state directory', () => {
  it('is never a guessable name in the shared /tmp, for a server user without XDG_RUNTIME_DIR', () => {
    const uid = vi.spyOn(process, 'getuid').mockReturnValue(101);
    try {
      const root = defaultStateRoot({ HOME: '/var/lib/postgresql' });
      expect(root.startsWith('/tmp')).toBe(false);
      expect(root).toBe('/var/lib/postgresql/.pgsnap');
    } finally {
      uid.mockRestore();
    }
  });
});

describe.skipIf(notRoot !== undefined)('a local attacker (nobody) against postgres running pgsnap', () => {
  it('a state directory someone else made first is refused, not used', () => {
    const dir = scratch();
    const planted = join(dir, 'pgsnap-101');
    expect(as('nobody', ['mkdir', '-m', '777', planted]).status).toBe(0);
    const status = as('postgres', [process.execPath, pgsnapBin, 'status', '--cluster', 'orders-db'], {
      PGSNAP_STATE_DIR: planted,
    });
    expect(status.status, status.stderr).toBe(3);
    expect(status.stderr).toContain(
      `${planted} belongs to uid ${idOf('nobody')}, not to us (uid ${idOf('postgres')})`,
    );
  });

  it('a segment planted in a shared --spool-dir is never moved into pg_wal', () => {
    const dir = scratch();
    const spool = join(dir, 'spool');
    const segment = '000000010000000000000003';
    expect(as('nobody', ['mkdir', '-m', '777', spool]).status).toBe(0);
    expect(as('nobody', ['sh', '-c', `printf 'not WAL' > ${spool}/${segment}`]).status).toBe(0);
    const pgWal = join(dir, 'pg_wal');
    mkdirSync(pgWal);
    execFileSync('chown', ['postgres:postgres', pgWal]);
    const line = restoreCommandLine({
      spool,
      url: `file://${resolve(dir, 'repo')}`,
      cluster: 'orders-db',
      prefetch: 2,
      pgsnap: [process.execPath, pgsnapBin],
    });
    const expanded = line
      .replaceAll('%f', segment)
      .replaceAll('%p', `${pgWal}/RECOVERYXLOG`)
      .replaceAll('%%', '%');
    const restore = as('postgres', ['sh', '-c', expanded]);
    expect(existsSync(join(pgWal, 'RECOVERYXLOG'))).toBe(false);
    expect(readFileSync(join(spool, segment), 'utf8')).toBe('not WAL');
    // Recovery stops with the reason, rather than replaying the planted file or ending early.
    expect(restore.status, restore.stderr).toBe(128);
    expect(restore.stderr).toContain(`${spool} belongs to uid ${idOf('nobody')}`);
  });

  it('a pid file naming a process of another user (pid 1) does not pass for a live helper', () => {
    const dir = scratch();
    const spool = join(dir, 'spool');
    expect(as('postgres', ['mkdir', '-m', '700', spool]).status).toBe(0);
    expect(as('postgres', ['sh', '-c', `echo 1 > ${spool}/archiver.pid`]).status).toBe(0);
    const probe = `import(${JSON.stringify(resolve('agent/wal/daemon.ts'))}).then((d) => process.stdout.write(String(d.lockHolder(${JSON.stringify(join(spool, 'archiver.pid'))}))))`;
    const tsx = resolve('node_modules/tsx/dist/esm/index.mjs');
    const held = as('postgres', [process.execPath, '--import', tsx, '-e', probe], {}, resolve('.'));
    expect(held.stderr).toBe('');
    expect(held.stdout).toBe('undefined');
  });
});
