/**
 * The prefetcher of `wal-fetch --prefetch` on top of a repository in memory:
 * what it does when the repository fails it, here at the first read of the
 * cluster pin (handed over by the restore_command that became the helper).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { RepositoryUnreachableError } from '#domain/repository/errors';
import { Repository } from '#domain/repository/repository';
import { segmentName } from '#domain/wal/file';
import { lockHolder, prefetcherLockName } from '../../agent/wal/daemon.ts';
import { prefetch, takePrefetcherLock, writeWant } from '../../agent/wal/prefetcher.ts';
import { MemoryStore } from '../support/memory-store.ts';

const segmentSize = 16 * 1024 * 1024;
let spool: string | undefined;
afterEach(() => {
  if (spool) rmSync(spool, { recursive: true, force: true });
});

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 8_000): Promise<T> {
  for (const deadline = Date.now() + timeoutMs; ; ) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

it('stops at once and frees the spool when its read of the cluster pin fails; the next prefetcher fetches ahead', async () => {
  const repository = new Repository(new MemoryStore(), 'orders-db');
  const pin = await repository.pin(
    { systemIdentifier: '7300000000000000001', walSegmentSize: segmentSize },
    'test',
  );
  const names = [1n, 2n, 3n].map((segno) => segmentName(1, segno, segmentSize));
  for (const name of names) await repository.pushWal(pin, name, Buffer.from(`the content of ${name}`));
  const dir = mkdtempSync(join(tmpdir(), 'pgsnap-prefetch-'));
  spool = dir;
  const config = {
    spool: dir,
    repository: { url: 'memory://test', cluster: 'orders-db' },
    ahead: 2,
    idleExitMs: 2_000,
  };
  // Recovery has taken the first segment and asks for what follows.
  writeWant(dir, names[0]!);

  // The restore_command's read of the pin, handed over, failed: the repository was briefly unreachable.
  const failedRead = Promise.reject(new RepositoryUnreachableError('the repository did not answer'));
  failedRead.catch(() => {});
  expect(takePrefetcherLock(dir)).toBe(true);
  // Returns (an idle one would wait ten minutes for recovery, far past the test's timeout), with the lock
  // released and nothing spooled.
  await prefetch({ ...config, idleExitMs: 600_000 }, repository, failedRead);
  expect(lockHolder(join(dir, prefetcherLockName))).toBeUndefined();
  expect(readdirSync(dir).filter((file) => /^[0-9A-F]{24}$/.test(file))).toEqual([]);

  // The next wal-fetch starts another, which reads the pin itself.
  expect(takePrefetcherLock(dir)).toBe(true);
  const helper = prefetch(config, new Repository(repository.store, 'orders-db'));
  await until('the next two segments in the spool', () =>
    names.slice(1).every((name) => readdirSync(dir).includes(name)) ? true : undefined,
  );
  for (const name of names.slice(1)) {
    expect(readFileSync(join(dir, name), 'utf8')).toBe(`the content of ${name}`);
  }
  // With no further request it ends by itself, and leaves no segment behind.
  await helper;
  expect(readdirSync(dir).filter((file) => /^[0-9A-F]{24}$/.test(file))).toEqual([]);
}, 15_000);

/** A repository in memory holding four segments, the first of which recovery has, and an empty spool. */
async function fourSegments() {
  const repository = new Repository(new MemoryStore(), 'orders-db');
  const pin = await repository.pin(
    { systemIdentifier: '7300000000000000001', walSegmentSize: segmentSize },
    'test',
  );
  const names = [1n, 2n, 3n, 4n].map((segno) => segmentName(1, segno, segmentSize));
  for (const name of names) await repository.pushWal(pin, name, Buffer.from(`the content of ${name}`));
  const dir = mkdtempSync(join(tmpdir(), 'pgsnap-prefetch-'));
  spool = dir;
  writeWant(dir, names[0]!);
  expect(takePrefetcherLock(dir)).toBe(true);
  return { repository, pin, names, dir };
}

it('handed the pin as read, marks the next segment as being fetched before it returns, then fetches the rest', async () => {
  const { repository, pin, names, dir } = await fourSegments();
  // The restore_command that becomes the prefetcher has placed the first segment and not answered yet:
  // PostgreSQL asks for the next one right after the answer, and the shell waits only for a marked fetch.
  const helper = prefetch(
    { spool: dir, repository: { url: 'memory://test', cluster: 'orders-db' }, ahead: 3, idleExitMs: 300 },
    repository,
    pin,
  );
  // Only that one: the answer to PostgreSQL waits for this round.
  expect(readdirSync(dir).filter((file) => file.endsWith('.fetching'))).toEqual([`${names[1]}.fetching`]);
  await until('the next three segments in the spool', () =>
    names.slice(1).every((name) => readdirSync(dir).includes(name)) ? true : undefined,
  );
  expect(readdirSync(dir).filter((file) => file.endsWith('.fetching'))).toEqual([]);
  await helper;
});

it('fetches only the next segment until the first file is in place, then the rest of the window', async () => {
  const { repository, pin, names, dir } = await fourSegments();
  // wal-fetch --stay is still fetching the first segment, which PostgreSQL waits for.
  let placeFirst: () => void = () => {};
  const firstPlaced = new Promise<void>((resolve) => {
    placeFirst = resolve;
  });
  const helper = prefetch(
    { spool: dir, repository: { url: 'memory://test', cluster: 'orders-db' }, ahead: 3, idleExitMs: 1_000 },
    repository,
    pin,
    firstPlaced,
  );
  const spooled = () => readdirSync(dir).filter((file) => /^[0-9A-F]{24}$/.test(file));
  await until('the next segment in the spool', () => (spooled().length > 0 ? true : undefined));
  await new Promise((resolve) => setTimeout(resolve, 200));
  expect(spooled()).toEqual([names[1]]);
  expect(readdirSync(dir).filter((file) => file.endsWith('.fetching'))).toEqual([]);
  placeFirst();
  await until('the whole window in the spool', () =>
    names.slice(1).every((name) => readdirSync(dir).includes(name)) ? true : undefined,
  );
  await helper;
});
