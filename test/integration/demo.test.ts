/** `npm start` runs `pgsnap demo`: it must pass its own drill and leave nothing behind. */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { states } from '../../infra/backup/state-names.ts';
import { btrfsUnavailable } from '../support/btrfs.ts';
import { pgsnap, pgsnapBin } from '../support/pgsnap.ts';
import { privateCheckout, reachableBy } from '../support/private-checkout.ts';

const isRoot = process.getuid?.() === 0;
if (!isRoot) {
  console.warn(
    'SKIPPING the demo from a checkout the server cannot reach: only as root does it run the servers as another user (postgres)',
  );
}

it('takes a backup under load through the synthesized state machine, restores it twice, checks the rows, and removes everything it made', async () => {
  const scratch = mkdtempSync(join(tmpdir(), 'pgsnap-demo-test-'));
  // As root the demo's server runs as postgres, which must be able to reach its directory.
  chmodSync(scratch, 0o711);
  try {
    const result = await pgsnap(
      ['demo', '--json'],
      { TMPDIR: scratch },
      { timeoutMs: 180_000, timeoutSignal: 'SIGTERM' },
    );
    expect(result.code, result.stderr).toBe(0);
    const report = result.json!;
    expect(report.ok).toBe(true);
    expect(report.backupId).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{6}$/);
    // Where the machine allows (as in CI), PGDATA, the tablespace and pg_wal are on three btrfs volumes.
    expect(report.provider).toBe(btrfsUnavailable() === undefined ? 'btrfs' : 'copy');
    if (process.env.CI) expect(report.provider).toBe('btrfs');
    expect(report.walFilesInRepository).toBeGreaterThan(0);
    const drills = report.drills as Array<{
      name: string;
      expectedRows: number;
      foundRows: number;
      extraRows: number;
      amcheck: string;
    }>;
    expect(drills).toHaveLength(2);
    for (const drill of drills) {
      expect(drill.expectedRows).toBeGreaterThan(0);
      expect(drill.foundRows).toBe(drill.expectedRows);
      expect(drill.amcheck).toBe('passed');
    }
    // The point-in-time drill stops exactly at the restore point: nothing written after it comes back.
    expect(drills[1]!.name).toMatch(/recovery_target_time/);
    expect(drills[1]!.extraRows).toBe(0);
    // The backup was the synthesized state machine's, run to its success state, with the agent on the host steps.
    const stateMachine = report.stateMachine as { states: number; events: string[] };
    expect(stateMachine.events).toEqual(['pgsnap backup completed']);
    for (const step of [states.begin, states.snapshot, states.end]) {
      expect(result.stderr).toMatch(new RegExp(`\\[\\s*\\d+\\w*\\] \\d+\\. state machine: ${step}`));
    }
    expect(result.stderr).toContain(`state machine: ${states.completed}`);
    expect(readdirSync(scratch)).toEqual([]);
    // No server (or anything else) it started is still running from its directory.
    const leftovers = spawnSync('pgrep', ['-f', scratch], { encoding: 'utf8' });
    expect(leftovers.stdout).toBe('');
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  // Past the demo's own 180 s, so that a slow demo fails with its output, after cleaning up.
}, 200_000);

it('removes everything it made when interrupted with Ctrl-C in the middle of the backup', async () => {
  const scratch = mkdtempSync(join(tmpdir(), 'pgsnap-demo-test-'));
  chmodSync(scratch, 0o711);
  try {
    const child = spawn(process.execPath, [pgsnapBin, 'demo'], {
      env: { ...process.env, TMPDIR: scratch },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await new Promise<void>((resolve, reject) => {
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
        // The server is in backup mode and the snapshots are taken: the most to undo.
        if (stderr.includes(`state machine: ${states.end}`)) resolve();
      });
      void exited.then(() => reject(new Error(`the demo ended before it was interrupted: ${stderr}`)));
    });
    child.kill('SIGINT');
    expect(await exited, stderr).toBe(130);
    expect(stderr).toContain('SIGINT: stopping and removing everything the demo made');
    expect(readdirSync(scratch)).toEqual([]);
    expect(spawnSync('pgrep', ['-f', scratch], { encoding: 'utf8' }).stdout).toBe('');
    // Loop devices only where it could make them (root; losetup is in /usr/sbin, off a user's PATH).
    if (btrfsUnavailable() === undefined) {
      expect(spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout).not.toContain(scratch);
    }
    expect(readFileSync('/proc/mounts', 'utf8')).not.toContain(scratch);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}, 200_000);

it.skipIf(!isRoot)(
  "works from a checkout under a directory the servers' user cannot enter, with Node.js installed there too",
  async () => {
    // A clone under /root (0700), Node.js from nvm under it: postgres can reach neither.
    const checkout = privateCheckout();
    const scratch = mkdtempSync(join(tmpdir(), 'pgsnap-demo-test-'));
    chmodSync(scratch, 0o711);
    try {
      expect(reachableBy('postgres', checkout.home)).toBe(false);
      const result = await pgsnap(
        ['demo', '--json'],
        { TMPDIR: scratch },
        // Stopped like Ctrl-C if it hangs, so that it still removes its volumes and servers.
        { bin: checkout.bin, node: checkout.node, timeoutMs: 180_000, timeoutSignal: 'SIGTERM' },
      );
      expect(result.code, result.stderr).toBe(0);
      const report = result.json!;
      expect(report.ok).toBe(true);
      // Archiving worked: the archive_command ran pgsnap wal-push, and both drills' restore_command wal-fetch.
      expect(report.walFilesInRepository).toBeGreaterThan(0);
      const drills = report.drills as Array<{ expectedRows: number; foundRows: number }>;
      expect(drills).toHaveLength(2);
      for (const drill of drills) expect(drill.foundRows).toBe(drill.expectedRows);
      // What it put where the servers could run it went with the rest.
      expect(readdirSync(scratch)).toEqual([]);
      expect(spawnSync('pgrep', ['-f', scratch], { encoding: 'utf8' }).stdout).toBe('');
    } finally {
      rmSync(scratch, { recursive: true, force: true });
      checkout.destroy();
    }
  },
  240_000,
);
