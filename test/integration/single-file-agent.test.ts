/**
 * The agent ships as one file: copied alone to a host directory (no
 * node_modules, no chunks beside it), it takes a backup and hands over its
 * artifacts. The one-command install is `install -m 755 dist/pgsnap-agent.mjs /usr/local/bin/pgsnap`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';
import { Cluster } from '../support/cluster.ts';

it('runs begin and end from dist/pgsnap-agent.mjs installed alone, outside the project', async () => {
  const host = mkdtempSync(join(tmpdir(), 'pgsnap-host-'));
  const cluster = await Cluster.create({ major: 15 });
  try {
    execFileSync('install', [
      '-m',
      '755',
      resolve(import.meta.dirname, '../../dist/pgsnap-agent.mjs'),
      join(host, 'pgsnap'),
    ]);
    expect(readdirSync(host)).toEqual(['pgsnap']);
    const env = { PATH: process.env.PATH, ...cluster.env, PGSNAP_STATE_DIR: join(host, 'state') };
    const run = (args: string[]) =>
      JSON.parse(execFileSync(join(host, 'pgsnap'), args, { env, cwd: host, encoding: 'utf8' })) as Record<
        string,
        unknown
      >;
    const begun = run(['begin', '--label', 'single file', '--fast', '--json']);
    expect(begun.startLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    const ended = run(['end', '--output', join(host, 'artifacts'), '--json']);
    expect(ended.backupId).toBe(begun.backupId);
    expect(readdirSync(join(host, 'artifacts'))).toContain('backup_label');
  } finally {
    cluster.destroy();
    rmSync(host, { recursive: true, force: true });
  }
});
