/**
 * Placing a fetched WAL file: the whole content under the final name, the
 * file private to its owner, and nothing left behind when it cannot be placed.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { placeFile } from '../../agent/wal/place-file.ts';

const scratch = mkdtempSync(join(tmpdir(), 'pgsnap-place-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

test('places a segment-sized file whole, byte for byte, readable by its owner only', () => {
  // Not a multiple of the 1 MiB write step, so the last short write counts too.
  const content = Buffer.alloc(16 * 2 ** 20 + 12_345);
  for (let i = 0; i < content.length; i += 4096) content.writeUInt32LE(i, i);
  const path = join(scratch, '000000010000000000000001');
  placeFile(join(scratch, '.000000010000000000000001.tmp'), path, content);
  expect(readFileSync(path).equals(content)).toBe(true);
  expect(statSync(path).mode & 0o777).toBe(0o600);
  expect(readdirSync(scratch)).toEqual(['000000010000000000000001']);
});

test('leaves neither the file nor its temporary when the rename fails', () => {
  const dir = mkdtempSync(join(scratch, 'fail-'));
  const temporary = join(dir, '.x.tmp');
  expect(() => placeFile(temporary, join(dir, 'missing-dir', 'x'), Buffer.from('wal'))).toThrow(/ENOENT/);
  expect(readdirSync(dir)).toEqual([]);
});
