/**
 * The agent for database hosts ships as dist/pgsnap-agent.tar.gz and is
 * installed with one command, `tar -xzf pgsnap-agent.tar.gz -C /usr/local`:
 * extracted alone into a prefix outside the project (no node_modules), it
 * takes a backup and hands over its artifacts, and archives and fetches WAL
 * (the zstd codec, the one native module, ships beside the chunks), through
 * bin/pgsnap, a symlink to lib/pgsnap/pgsnap.mjs whose chunks load from beside
 * the real file.
 */
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';
import { Cluster } from '../support/cluster.ts';

it('runs begin, end, wal-push and wal-fetch from dist/pgsnap-agent.tar.gz extracted alone into a prefix, outside the project', async () => {
  const prefix = mkdtempSync(join(tmpdir(), 'pgsnap-host-'));
  const cluster = await Cluster.create({ major: 15 });
  try {
    execFileSync('tar', [
      '-xzf',
      resolve(import.meta.dirname, '../../dist/pgsnap-agent.tar.gz'),
      '-C',
      prefix,
    ]);
    expect(readdirSync(prefix).sort()).toEqual(['bin', 'lib']);
    const bin = join(prefix, 'bin', 'pgsnap');
    expect(lstatSync(bin).isSymbolicLink()).toBe(true);
    expect(readlinkSync(bin)).toBe('../lib/pgsnap/pgsnap.mjs');
    expect(readdirSync(join(prefix, 'lib', 'pgsnap')).sort()).toEqual([
      'chunks',
      'node_modules',
      'pgsnap.mjs',
    ]);

    const env = { PATH: process.env.PATH, ...cluster.env, PGSNAP_STATE_DIR: join(prefix, 'state') };
    const run = (args: string[]) =>
      JSON.parse(execFileSync(bin, args, { env, cwd: prefix, encoding: 'utf8' })) as Record<string, unknown>;
    const begun = run(['begin', '--label', 'installed', '--fast', '--json']);
    expect(begun.startLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    const ended = run(['end', '--output', join(prefix, 'artifacts'), '--json']);
    expect(ended.backupId).toBe(begun.backupId);
    expect(readdirSync(join(prefix, 'artifacts'))).toContain('backup_label');

    // archive_command and restore_command on the host: the segment the backup ended in, through the codec.
    mkdirSync(join(prefix, 'repo'));
    const repo = ['--repo', `file://${join(prefix, 'repo')}`, '--cluster', 'host'];
    const segment = String(ended.stopWalFile);
    const original = readFileSync(join(cluster.dataDir, 'pg_wal', segment));
    run([
      'wal-push',
      join(cluster.dataDir, 'pg_wal', segment),
      '--pgdata',
      cluster.dataDir,
      '--json',
      ...repo,
    ]);
    execFileSync(bin, ['wal-fetch', segment, join(prefix, 'fetched'), ...repo], { env, cwd: prefix });
    expect(readFileSync(join(prefix, 'fetched')).equals(original)).toBe(true);
  } finally {
    cluster.destroy();
    rmSync(prefix, { recursive: true, force: true });
  }
});
