/**
 * The agent for database hosts ships as dist/pgsnap-agent.tar.gz and is
 * installed with one command, `tar -xzf pgsnap-agent.tar.gz -C /usr/local`:
 * extracted alone into a prefix outside the project (no node_modules), it
 * takes a backup and hands over its artifacts, through bin/pgsnap, a symlink
 * to lib/pgsnap/pgsnap.mjs whose chunks load from beside the real file.
 */
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';
import { Cluster } from '../support/cluster.ts';

it('runs begin and end from dist/pgsnap-agent.tar.gz extracted alone into a prefix, outside the project', async () => {
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
    expect(readdirSync(join(prefix, 'lib', 'pgsnap')).sort()).toEqual(['chunks', 'pgsnap.mjs']);

    const env = { PATH: process.env.PATH, ...cluster.env, PGSNAP_STATE_DIR: join(prefix, 'state') };
    const run = (args: string[]) =>
      JSON.parse(execFileSync(bin, args, { env, cwd: prefix, encoding: 'utf8' })) as Record<string, unknown>;
    const begun = run(['begin', '--label', 'installed', '--fast', '--json']);
    expect(begun.startLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    const ended = run(['end', '--output', join(prefix, 'artifacts'), '--json']);
    expect(ended.backupId).toBe(begun.backupId);
    expect(readdirSync(join(prefix, 'artifacts'))).toContain('backup_label');
  } finally {
    cluster.destroy();
    rmSync(prefix, { recursive: true, force: true });
  }
});
