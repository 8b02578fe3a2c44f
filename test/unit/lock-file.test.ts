/**
 * Lock files: one taker wins, and a rival that reads the lock while it is
 * being taken sees it whole. begin and the WAL helpers read a lock to tell a
 * live holder from one left by a crash; a lock seen empty was taken for the
 * latter and removed from under its taker.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { createLockFile } from '../../agent/host/lock-file.ts';

const scratch = mkdtempSync(join(tmpdir(), 'pgsnap-lock-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

test('the first taker wins; the lock holds its content, private, and no temporary is left', () => {
  const dir = mkdtempSync(join(scratch, 'take-'));
  const lock = join(dir, 'lock');
  expect(createLockFile(lock, '{"pid":1}\n')).toBe(true);
  expect(createLockFile(lock, '{"pid":2}\n')).toBe(false);
  expect(readFileSync(lock, 'utf8')).toBe('{"pid":1}\n');
  expect(statSync(lock).mode & 0o777).toBe(0o600);
  expect(readdirSync(dir)).toEqual(['lock']);
});

test('a reader in another process never sees a lock without its content', async () => {
  const dir = mkdtempSync(join(scratch, 'race-'));
  const lock = join(dir, 'lock');
  const stop = join(dir, 'stop');
  // Another process takes and releases the lock as fast as it can until told to stop, and at least 101 times
  // (on a loaded machine it may not have got that far when the reader has seen enough).
  const taker = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      `import { existsSync, rmSync } from 'node:fs';
       import { createLockFile } from ${JSON.stringify(join(import.meta.dirname, '../../agent/host/lock-file.ts'))};
       let taken = 0;
       while (!existsSync(${JSON.stringify(stop)}) || taken <= 100) {
         if (createLockFile(${JSON.stringify(lock)}, '{"backupId":"b","pid":1}\\n')) taken++;
         rmSync(${JSON.stringify(lock)}, { force: true });
       }
       console.log(taken);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let output = '';
  taker.stdout.on('data', (chunk) => {
    output += chunk;
  });
  try {
    let seen = 0;
    const torn: string[] = [];
    const until = Date.now() + 1_500;
    // Read until the taker has been at it for a while: it needs ~0.3 s to start.
    while (Date.now() < until || seen <= 100) {
      let text: string;
      try {
        text = readFileSync(lock, 'utf8');
      } catch {
        if (taker.exitCode !== null) break;
        continue;
      }
      seen++;
      if (text !== '{"backupId":"b","pid":1}\n') torn.push(text);
      if (Date.now() > until + 10_000) break;
    }
    expect(torn.slice(0, 3)).toEqual([]);
    expect(seen).toBeGreaterThan(100);
  } finally {
    writeFileSync(stop, '');
    if (taker.exitCode === null) await once(taker, 'exit');
  }
  expect(taker.exitCode).toBe(0);
  expect(Number(output)).toBeGreaterThan(100);
  expect(existsSync(lock)).toBe(false);
}, 30_000);
