/**
 * The agent for database hosts is one file, dist/pgsnap-linux-x64 or
 * dist/pgsnap-linux-arm64 (`npm run package`), a Node.js single executable:
 * copied alone outside the project, with no Node.js on PATH, it takes a
 * backup and hands over its artifacts, archives and fetches WAL (zstd from
 * the Node.js inside it, no native module), and installs its systemd unit and
 * settings file. The arm64 one runs under qemu-user (Debian's
 * qemu-user-static and the arm64 C libraries) where they are installed; it is
 * skipped loudly otherwise, and CI, which installs them, must run it.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Cluster } from '../support/cluster.ts';

const project = resolve(import.meta.dirname, '../..');
const arm64Libraries = '/usr/aarch64-linux-gnu';
const qemu = '/usr/bin/qemu-aarch64-static';
const noQemu = !existsSync(qemu)
  ? `${qemu} is missing (apt-get install qemu-user-static)`
  : !existsSync(join(arm64Libraries, 'lib/ld-linux-aarch64.so.1'))
    ? `the arm64 C libraries are missing (apt-get install libc6-arm64-cross libstdc++6-arm64-cross)`
    : undefined;
if (noQemu && process.env.CI) throw new Error(`CI must run the arm64 executable, but ${noQemu}`);
if (noQemu) console.warn(`SKIPPING the arm64 executable under qemu-user: ${noQemu}`);

let host: string;
let cluster: Cluster;
/** A PATH with every command of the system's, but no Node.js. */
let pathWithoutNode: string;

beforeAll(async () => {
  // Both executables, as `npm run package` makes them (the bundle is built by the global setup).
  execFileSync(process.execPath, ['agent/package.mjs'], { cwd: project, stdio: 'inherit' });
  host = mkdtempSync(join(tmpdir(), 'pgsnap-host-'));
  chmodSync(host, 0o755);
  const tools = join(host, 'tools');
  mkdirSync(tools);
  for (const dir of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    for (const name of existsSync(dir) ? readdirSync(dir) : []) {
      if (/^(node|nodejs|npm|npx|corepack)$/.test(name) || existsSync(join(tools, name))) continue;
      symlinkSync(join(dir, name), join(tools, name));
    }
  }
  pathWithoutNode = tools;
  cluster = await Cluster.create({ major: 15 });
}, 600_000);

afterAll(() => {
  cluster?.destroy();
  if (host) rmSync(host, { recursive: true, force: true });
});

it('runs begin, end, wal-push and wal-fetch from the x64 executable alone, outside the project, with no Node.js on PATH', () => {
  const prefix = join(host, 'x64');
  mkdirSync(join(prefix, 'bin'), { recursive: true });
  const bin = join(prefix, 'bin', 'pgsnap');
  // The README's install, one file.
  execFileSync('install', ['-m', '0755', join(project, 'dist/pgsnap-linux-x64'), bin]);
  const env = { PATH: pathWithoutNode, ...cluster.env, PGSNAP_STATE_DIR: join(prefix, 'state') };
  expect(spawnSync('sh', ['-c', 'command -v node'], { env }).status).not.toBe(0);
  const run = (args: string[]) =>
    JSON.parse(execFileSync(bin, args, { env, cwd: prefix, encoding: 'utf8' })) as Record<string, unknown>;

  // Nothing on stderr, and the V8 code cache made for this Node.js and CPU taken.
  const started = spawnSync(bin, ['--version'], { env, cwd: prefix, encoding: 'utf8' });
  expect(started.stderr).toBe('');
  const version = started.stdout;
  expect(version).toMatch(/^Node\.js v24\.\d+\.\d+ \(single executable, V8 code cache used, linux-x64\)$/m);
  expect(version).toMatch(/^WAL codec: zstd from node:zlib/m);

  // begin starts the holder from the same file (no script to pass it), which holds the session until end.
  const begun = run(['begin', '--label', 'installed', '--fast', '--json']);
  expect(begun.startLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
  const ended = run(['end', '--output', join(prefix, 'artifacts'), '--json']);
  expect(ended.backupId).toBe(begun.backupId);
  expect(readdirSync(join(prefix, 'artifacts'))).toContain('backup_label');

  // archive_command and restore_command on the host: the segment the backup ended in.
  mkdirSync(join(prefix, 'repo'));
  const repo = ['--repo', `file://${join(prefix, 'repo')}`, '--cluster', 'host'];
  const segment = String(ended.stopWalFile);
  const original = readFileSync(join(cluster.dataDir, 'pg_wal', segment));
  run(['wal-push', join(cluster.dataDir, 'pg_wal', segment), '--pgdata', cluster.dataDir, '--json', ...repo]);
  execFileSync(bin, ['wal-fetch', segment, join(prefix, 'fetched'), ...repo], { env, cwd: prefix });
  expect(readFileSync(join(prefix, 'fetched')).equals(original)).toBe(true);

  // The archive_command line it prints starts this file itself, not Node.js and a script.
  const line = execFileSync(
    bin,
    ['wal-push', '--print-command', '--async', '--pgdata', cluster.dataDir, '--json', ...repo],
    { env, cwd: prefix, encoding: 'utf8' },
  );
  expect(line).toContain(` ${bin} wal-push %p`);
  expect(line).not.toMatch(/node|\.mjs/);
});

it('pgsnap agent install writes the executable, the unit and a root-only settings file; an upgrade keeps the settings and the agent service its backup', async () => {
  const root = join(host, 'root');
  mkdirSync(root);
  const executable = join(host, 'x64', 'bin', 'pgsnap');
  const env = { PATH: pathWithoutNode, PGSNAP_STATE_DIR: join(host, 'x64', 'state') };
  const install = (args: string[] = []) =>
    JSON.parse(
      execFileSync(executable, ['agent', 'install', '--root', root, '--json', ...args], {
        env,
        encoding: 'utf8',
      }),
    ) as {
      files: Array<{ path: string; action: string }>;
      service?: { sessions: Array<{ backupId: string }> };
      next: string;
    };

  const first = install();
  // The files as written, under --root: where an image builder looks for them.
  expect(first.files).toEqual([
    { path: join(root, 'usr/local/bin/pgsnap'), action: 'written' },
    { path: join(root, 'etc/systemd/system/pgsnap-agent.service'), action: 'written' },
    { path: join(root, 'etc/pgsnap/pgsnap.env'), action: 'written' },
  ]);
  expect(first.next).toContain('systemctl enable --now pgsnap-agent');
  const installed = join(root, 'usr/local/bin/pgsnap');
  expect(readFileSync(installed).equals(readFileSync(executable))).toBe(true);
  expect(statSync(installed).mode & 0o777).toBe(0o755);
  const unit = readFileSync(join(root, 'etc/systemd/system/pgsnap-agent.service'), 'utf8');
  expect(unit).toContain('ExecStart="/usr/local/bin/pgsnap" agent\n');
  expect(unit).toContain('EnvironmentFile=-/etc/pgsnap/pgsnap.env\n');
  // What the SSM document checks before it sources the settings as root.
  for (const [path, mode] of [
    ['etc/pgsnap', 0o755],
    ['etc/pgsnap/pgsnap.env', 0o600],
  ] as const) {
    expect(statSync(join(root, path)).uid).toBe(0);
    expect(statSync(join(root, path)).mode & 0o777).toBe(mode);
  }

  // An upgrade while the installed agent service holds a backup: the executable is renamed over (a new
  // inode; the service keeps running the old one), install names the backup and restarts nothing, the
  // operator's settings stay, and the backup ends normally afterwards.
  execFileSync('sh', ['-c', `echo PGSNAP_CLUSTER=orders-db >> ${join(root, 'etc/pgsnap/pgsnap.env')}`]);
  const stateDir = join(host, 'service-state');
  const service = spawn(installed, ['agent'], {
    env: { PATH: pathWithoutNode, PGSNAP_STATE_DIR: stateDir },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  try {
    await new Promise<void>((resolveListening, reject) => {
      service.stderr.on(
        'data',
        (chunk: Buffer) => chunk.toString().includes('listening on') && resolveListening(),
      );
      service.on('exit', (code) => reject(new Error(`pgsnap agent exited with ${code}`)));
    });
    const backupEnv = { ...env, ...cluster.env, PGSNAP_STATE_DIR: stateDir };
    const begun = JSON.parse(
      execFileSync(installed, ['begin', '--label', 'upgrade', '--fast', '--json'], {
        env: backupEnv,
        encoding: 'utf8',
      }),
    ) as { backupId: string };
    const inode = statSync(installed).ino;
    const second = install(['--state-dir', stateDir]);
    expect(second.files.map((file) => file.action)).toEqual(['replaced', 'replaced', 'kept']);
    expect(statSync(installed).ino).not.toBe(inode);
    expect(second.service?.sessions.map((session) => session.backupId)).toEqual([begun.backupId]);
    expect(second.next).toContain(`holds backup ${begun.backupId}`);
    expect(second.next).toContain('restarting it aborts');
    expect(service.exitCode).toBe(null);
    const ended = JSON.parse(
      execFileSync(installed, ['end', '--output', join(host, 'upgrade-artifacts'), '--json'], {
        env: backupEnv,
        encoding: 'utf8',
      }),
    ) as { backupId: string };
    expect(ended.backupId).toBe(begun.backupId);
  } finally {
    service.kill('SIGTERM');
    await once(service, 'exit');
  }
  expect(readFileSync(join(root, 'etc/pgsnap/pgsnap.env'), 'utf8')).toContain('PGSNAP_CLUSTER=orders-db\n');

  // --print writes nothing and shows both files.
  const printed = execFileSync(executable, ['agent', 'install', '--print'], { env, encoding: 'utf8' });
  expect(printed).toContain('[Service]\nExecStart="/usr/local/bin/pgsnap" agent');
  expect(printed).toContain('#PGSNAP_REPO=');
});

it.skipIf(noQemu !== undefined)(
  'starts the arm64 executable under qemu-user and round-trips a WAL file through a file:// repository',
  () => {
    const prefix = join(host, 'arm64');
    mkdirSync(prefix);
    const bin = join(prefix, 'pgsnap');
    execFileSync('install', ['-m', '0755', join(project, 'dist/pgsnap-linux-arm64'), bin]);
    const env = {
      PATH: pathWithoutNode,
      QEMU_LD_PREFIX: arm64Libraries,
      PGSNAP_STATE_DIR: join(prefix, 'state'),
    };
    const arm64 = (args: string[]) =>
      execFileSync(qemu, [bin, ...args], { env, cwd: prefix, encoding: 'utf8' });

    const started = spawnSync(qemu, [bin, '--version'], { env, cwd: prefix, encoding: 'utf8' });
    expect(started.stderr).toBe('');
    const version = started.stdout;
    expect(version).toMatch(
      /^Node\.js v24\.\d+\.\d+ \(single executable, V8 code cache used, linux-arm64\)$/m,
    );
    expect(version).toMatch(/^WAL codec: zstd from node:zlib/m);

    mkdirSync(join(prefix, 'repo'));
    const repo = ['--repo', `file://${join(prefix, 'repo')}`, '--cluster', 'arm64'];
    const walDir = join(cluster.dataDir, 'pg_wal');
    const segment = readdirSync(walDir)
      .filter((name) => /^[0-9A-F]{24}$/.test(name))
      .sort()[0]!;
    const original = readFileSync(join(walDir, segment));
    arm64(['wal-push', join(walDir, segment), '--pgdata', cluster.dataDir, ...repo]);
    expect(readdirSync(join(prefix, 'repo', 'arm64', 'wal'))).toEqual([`${segment}.zst`]);
    arm64(['wal-fetch', segment, join(prefix, 'fetched'), ...repo]);
    expect(readFileSync(join(prefix, 'fetched')).equals(original)).toBe(true);
  },
);
