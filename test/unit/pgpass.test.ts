/**
 * The password file as the agent service reads it for the `begin` that asked
 * (its PGPASSFILE / HOME, not the service's): libpq's matching rules.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { passwordFromFile } from '../../agent/postgres/pgpass.ts';

const scratch = mkdtempSync(join(tmpdir(), 'pgsnap-pgpass-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function passFile(name: string, text: string, mode = 0o600): string {
  const file = join(scratch, name);
  writeFileSync(file, text);
  chmodSync(file, mode);
  return file;
}

const entries = [
  '# a comment',
  'db1.example.com:5432:orders:backup:first\\:secret',
  'localhost:5433:*:backup:from-the-socket',
  '*:*:*:other:wildcard\\\\pass',
].join('\n');

test('finds the entry for the host, port, database and user, with escaped colons and backslashes', async () => {
  const env = { PGPASSFILE: passFile('pgpass', entries) };
  const target = { host: 'db1.example.com', port: 5432, database: 'orders', user: 'backup' };
  expect(await passwordFromFile(env, target)).toBe('first:secret');
  expect(await passwordFromFile(env, { ...target, user: 'other' })).toBe('wildcard\\pass');
  expect(await passwordFromFile(env, { ...target, port: 5439 })).toBeUndefined();
});

test('a socket directory matches the host name localhost, as in libpq', async () => {
  const env = { PGPASSFILE: passFile('pgpass-socket', entries) };
  const target = { host: '/var/run/postgresql', port: 5433, database: 'postgres', user: 'backup' };
  expect(await passwordFromFile(env, target)).toBe('from-the-socket');
});

test("uses the asking begin's HOME when it names no PGPASSFILE, and ignores a file others may read", async () => {
  const home = join(scratch, 'home');
  rmSync(home, { recursive: true, force: true });
  mkdirSync(home);
  passFile('home/.pgpass', entries);
  const target = { host: 'db1.example.com', port: 5432, database: 'orders', user: 'backup' };
  expect(await passwordFromFile({ HOME: home }, target)).toBe('first:secret');
  expect(await passwordFromFile({ PGPASSFILE: passFile('open', entries, 0o644) }, target)).toBeUndefined();
  expect(await passwordFromFile({ PGPASSFILE: join(scratch, 'missing') }, target)).toBeUndefined();
});
