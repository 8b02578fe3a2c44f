import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { sampleArchiveHealth } from '../../agent/metrics/archive-health.ts';
import type { Client } from '../../agent/postgres/client.ts';
import { errorStatusName, okStatusName } from '../../agent/wal/shell-lines.ts';

const now = new Date('2026-12-01T12:00:00.000Z');
const minutesAgo = (m: number) => new Date(now.getTime() - m * 60_000);

/** What PostgreSQL answers: pg_stat_archiver and the archive_status directory. */
function server(options: {
  lastArchived: Date | null;
  ready: Array<{ name: string; modified: Date }>;
  pgdata: string;
}) {
  return {
    async query(sql: string) {
      if (sql.includes('pg_stat_archiver')) {
        return {
          rows: [
            {
              archived_count: '41',
              failed_count: '7',
              last_archived_wal: options.lastArchived ? '000000010000000000000029' : null,
              last_archived_time: options.lastArchived,
              last_failed_wal: '00000001000000000000002A',
              last_failed_time: minutesAgo(1),
              data_directory: options.pgdata,
              system_identifier: '7400000000000000001',
              version_num: 150010,
            },
          ],
        };
      }
      return { rows: options.ready.map((r) => ({ name: `${r.name}.ready`, modification: r.modified })) };
    },
  } as unknown as Client;
}

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'pgsnap-health-'));
  mkdirSync(join(root, 'data', 'pg_wal'), { recursive: true });
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('a sample of archive health', () => {
  test('the lag runs from the last archived file while files wait; the pusher’s backlog counts what it has not stored', async () => {
    const spool = join(root, 'state', 'orders-db', 'wal-push-7400000000000000001');
    mkdirSync(spool, { recursive: true });
    writeFileSync(
      join(spool, okStatusName('00000001000000000000002A', '1234-16777216-1764590000.000000000')),
      '',
    );
    writeFileSync(join(spool, errorStatusName('00000001000000000000002B')), 'S3 said no\n');
    const health = await sampleArchiveHealth(
      server({
        pgdata: join(root, 'data'),
        lastArchived: minutesAgo(20),
        ready: [
          { name: '00000001000000000000002A', modified: minutesAgo(19) },
          { name: '00000001000000000000002B', modified: minutesAgo(10) },
          { name: '00000002.history', modified: minutesAgo(5) },
        ],
      }),
      { cluster: 'orders-db', spoolRoot: join(root, 'state'), now: () => now },
    );
    expect(health).toMatchObject({
      readyFiles: 3,
      archiveLagSeconds: 20 * 60,
      oldestReadySeconds: 19 * 60,
      failedCount: 7,
      pusherBacklog: 2,
      pusherErrors: 1,
      walDirectory: join(root, 'data', 'pg_wal'),
    });
    expect(health.walVolumeFreeBytes).toBeGreaterThan(0);
  });

  test('no lag when nothing waits, however long ago the last file was archived; no pusher without its spool', async () => {
    const health = await sampleArchiveHealth(
      server({ pgdata: join(root, 'data'), lastArchived: minutesAgo(600), ready: [] }),
      { cluster: 'orders-db', spoolRoot: join(root, 'state'), now: () => now },
    );
    expect(health).toMatchObject({ readyFiles: 0, archiveLagSeconds: 0, pusherBacklog: undefined });
  });

  test('before anything was archived, the oldest ready file’s age stands in; pg_wal out of reach is said', async () => {
    const health = await sampleArchiveHealth(
      server({
        pgdata: join(root, 'missing'),
        lastArchived: null,
        ready: [{ name: '000000010000000000000001', modified: minutesAgo(3) }],
      }),
      { now: () => now },
    );
    expect(health.archiveLagSeconds).toBe(180);
    expect(health.walVolumeFreeBytes).toBeUndefined();
    expect(health.problems).toEqual([expect.stringContaining('the free space of')]);
  });
});
