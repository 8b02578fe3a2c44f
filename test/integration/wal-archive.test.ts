/**
 * wal-push and wal-fetch as PostgreSQL runs them (archive_command as the
 * server user, no environment but the command line), against a directory and
 * a local S3 server.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiverStats, switchSegments, waitArchived } from '../support/archiving.ts';
import { Cluster, ownedDir } from '../support/cluster.ts';
import { tempDirForTest } from '../support/fixtures.ts';
import { pgsnap, pgsnapBin } from '../support/pgsnap.ts';
import { type BackendKind, testRepository } from '../support/repository.ts';
import { LocalS3 } from '../support/s3.ts';
import { waitFor } from '../support/wait.ts';

let s3: LocalS3;
beforeAll(async () => {
  s3 = await LocalS3.start();
});
afterAll(async () => {
  await s3?.destroy();
});

/** What these tests fill each segment with: 5000 rows of 256 characters (about 1.3 MB). */
const filled = { rows: 5000, md5sPerRow: 8 };

describe.each<BackendKind>(['file', 's3'])('on a %s repository', (kind) => {
  it('archives every segment the server hands over and fetches each back byte for byte', async () => {
    const repo = testRepository(kind, s3);
    const cluster = await Cluster.create({ settings: { archive_command: repo.archiveCommand() } });
    const out = mkdtempSync(join(tmpdir(), 'pgsnap-fetched-'));
    try {
      const segments = await switchSegments(cluster, 3, filled);
      await waitArchived(cluster, segments.at(-1)!, { timeoutMs: 60_000 });
      for (const segment of segments) {
        const target = join(out, segment);
        const fetched = await pgsnap(['wal-fetch', segment, target, ...repo.flags], repo.env);
        expect(fetched.code, fetched.stderr).toBe(0);
        expect(readFileSync(target).equals(readFileSync(join(cluster.dataDir, 'pg_wal', segment)))).toBe(
          true,
        );
      }
      const repository = await repo.open();
      const [control] = await cluster.query<{ id: string }>(
        'SELECT system_identifier::text AS id FROM pg_control_system()',
      );
      expect(await repository.readPin()).toMatchObject({
        systemIdentifier: control!.id,
        walCompression: 'zstd',
      });
      repository.close();
    } finally {
      cluster.destroy();
      repo.destroy();
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('takes a segment pushed twice as success and refuses other content under its name, naming both checksums', async () => {
    const repo = testRepository(kind, s3);
    const cluster = await Cluster.create({ settings: { archive_command: repo.archiveCommand() } });
    const elsewhere = ownedDir(mkdtempSync(join(tmpdir(), 'pgsnap-forged-')));
    try {
      const [segment] = await switchSegments(cluster, 1, filled);
      await waitArchived(cluster, segment!, { timeoutMs: 60_000 });
      const original = join(cluster.dataDir, 'pg_wal', segment!);

      const again = await pgsnap(
        ['wal-push', original, '--pgdata', cluster.dataDir, ...repo.flags],
        repo.env,
      );
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr).toMatch(/already in .* with the same content/);

      const forged = Buffer.from(readFileSync(original));
      forged[100_000]! ^= 0xff;
      writeFileSync(join(elsewhere, segment!), forged);
      const conflict = await pgsnap(
        ['wal-push', join(elsewhere, segment!), '--json', ...repo.flags],
        repo.env,
      );
      expect(conflict.code).toBe(1);
      expect(conflict.json?.error).toMatchObject({ name: 'RepositoryConflictError' });
      const { createHash } = await import('node:crypto');
      for (const content of [readFileSync(original), forged]) {
        expect(conflict.stderr).toContain(createHash('sha256').update(content).digest('hex'));
      }
      const fetched = await pgsnap(['wal-fetch', segment!, join(elsewhere, 'back'), ...repo.flags], repo.env);
      expect(fetched.code).toBe(0);
      expect(readFileSync(join(elsewhere, 'back')).equals(readFileSync(original))).toBe(true);
    } finally {
      cluster.destroy();
      repo.destroy();
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  it('says nothing for a file that is not there, and stops recovery for a damaged one', async () => {
    const repo = testRepository(kind, s3);
    const cluster = await Cluster.create({ settings: { archive_command: repo.archiveCommand() } });
    const out = mkdtempSync(join(tmpdir(), 'pgsnap-fetched-'));
    try {
      const [segment] = await switchSegments(cluster, 1, filled);
      await waitArchived(cluster, segment!, { timeoutMs: 60_000 });
      for (const missing of ['000000010000000000000099', '00000002.history']) {
        const result = await pgsnap(['wal-fetch', missing, join(out, 'x'), ...repo.flags], repo.env);
        expect(result).toMatchObject({ code: 1, stdout: '', stderr: '' });
      }

      const repository = await repo.open();
      const pin = await repository.requirePin();
      const key = repository.walKey(pin, segment!);
      const stored = (await repository.store.get(key))!;
      await repository.store.put(key, stored.subarray(0, stored.length - 1000));
      repository.close();
      const damaged = await pgsnap(['wal-fetch', segment!, join(out, 'x'), ...repo.flags], repo.env);
      expect(damaged.code).toBe(128);
      expect(damaged.stderr).toMatch(/truncated/);
    } finally {
      cluster.destroy();
      repo.destroy();
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('refuses WAL from another cluster archiving under the same name', async () => {
    const repo = testRepository(kind, s3);
    const first = await Cluster.create({ settings: { archive_command: repo.archiveCommand() } });
    const second = await Cluster.create({ settings: { archive_command: repo.archiveCommand() } });
    try {
      const [segment] = await switchSegments(first, 1, filled);
      await waitArchived(first, segment!, { timeoutMs: 60_000 });
      await switchSegments(second, 1, filled);
      // The failure reaches pg_stat_archiver a moment after the command's message reaches the log.
      const stats = await waitFor(
        'a failed archive_command',
        async () => {
          const now = await archiverStats(second);
          return now.failed > 0 ? now : undefined;
        },
        { cluster: second, timeoutMs: 30_000 },
      );
      expect(second.log()).toMatch(/belongs to the cluster with system identifier \d+.*Nothing was written/);
      expect(stats).toMatchObject({ last: null });
      expect(stats.failed).toBeGreaterThan(0);
    } finally {
      first.destroy();
      second.destroy();
      repo.destroy();
    }
  });
});

it('wal-fetch stops recovery (exit 128), not "no such file", when its own code cannot be loaded', async () => {
  // An install being replaced under a running recovery: the entry point is there, the command's chunk is not.
  const copy = tempDirForTest('pgsnap-broken-install-');
  cpSync(dirname(pgsnapBin), copy, {
    recursive: true,
    filter: (path) => !/[\\/]wal-fetch-[^/]*\.mjs$/.test(path) && !path.endsWith('.tar.gz'),
  });
  expect(readdirSync(join(copy, 'chunks')).some((f) => f.startsWith('wal-fetch-'))).toBe(false);
  const args = [
    'wal-fetch',
    '000000010000000000000001',
    join(copy, 'x'),
    '--repo',
    `file://${copy}`,
    '--cluster',
    'c',
  ];
  const result = await pgsnap(args, {}, { bin: join(copy, basename(pgsnapBin)) });
  expect(result.code).toBe(128);
  expect(result.stderr).toMatch(/pgsnap: Cannot find module .*wal-fetch-/);
});
