/**
 * `pgsnap agent install`'s files as another user on the host would meet them:
 * a temporary file already at its final mode before a byte is in it, and an
 * ExecStart line systemd reads as one word whatever the path holds.
 */
import { closeSync, fstatSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createWithMode, systemdQuote, unitFile } from '../../agent/install/install-agent.ts';

let dir: string;
let umask: number;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'pgsnap-install-'));
  umask = process.umask(0o077);
});
afterEach(() => {
  process.umask(umask);
  rmSync(dir, { recursive: true, force: true });
});

it('creates the temporary file empty with its final mode, whatever the umask, before anything is written', () => {
  for (const mode of [0o755, 0o644]) {
    const fd = createWithMode(join(dir, `file-${mode.toString(8)}`), mode);
    try {
      const s = fstatSync(fd);
      expect(s.size).toBe(0);
      expect(s.mode & 0o7777).toBe(mode);
    } finally {
      closeSync(fd);
    }
  }
});

it('never opens a file or a link that is already there', () => {
  writeFileSync(join(dir, 'there'), 'planted');
  symlinkSync('/etc/passwd', join(dir, 'link'));
  expect(() => createWithMode(join(dir, 'there'), 0o755)).toThrow(/EEXIST/);
  expect(() => createWithMode(join(dir, 'link'), 0o755)).toThrow(/EEXIST/);
});

it('quotes ExecStart so that a path with spaces, quotes, % or $ stays one word, and refuses a newline', () => {
  expect(unitFile('/usr/local/bin/pgsnap')).toContain('ExecStart="/usr/local/bin/pgsnap" agent\n');
  expect(systemdQuote('/opt/my tools/pgsnap')).toBe('"/opt/my tools/pgsnap"');
  expect(systemdQuote('/opt/a"b\\c/pgsnap')).toBe('"/opt/a\\"b\\\\c/pgsnap"');
  expect(systemdQuote('/opt/%h/$HOME/pgsnap')).toBe('"/opt/%%h/$$HOME/pgsnap"');
  expect(() => unitFile('/opt/pgsnap\nExecStartPre=/bin/sh -c id')).toThrow(/control characters/);
});
