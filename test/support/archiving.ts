/**
 * What a test or a benchmark asks of a server's archiver: its counters, the
 * segment being written, new segments, and waiting until a segment is
 * archived. No vitest here: the benchmarks import it too.
 */
import type { Cluster } from './cluster.ts';
import { type WaitOptions, waitFor } from './wait.ts';

export interface ArchiverStats {
  archived: number;
  failed: number;
  /** The newest segment archived, and the newest that failed; null before the first. */
  last: string | null;
  lastFailed: string | null;
}

/** pg_stat_archiver's counters and the last segments archived and failed. */
export async function archiverStats(cluster: Cluster): Promise<ArchiverStats> {
  const [row] = await cluster.query<{
    archived: string;
    failed: string;
    last: string | null;
    lastFailed: string | null;
  }>(
    `SELECT archived_count::text AS archived, failed_count::text AS failed, last_archived_wal AS last,
            last_failed_wal AS "lastFailed" FROM pg_stat_archiver`,
  );
  return {
    archived: Number(row!.archived),
    failed: Number(row!.failed),
    last: row!.last,
    lastFailed: row!.lastFailed,
  };
}

/** The segment being written; after pg_switch_wal() it is the last one to wait for. */
export async function currentSegment(cluster: Cluster): Promise<string> {
  const [row] = await cluster.query<{ name: string }>(
    'SELECT pg_walfile_name(pg_current_wal_insert_lsn()) AS name',
  );
  return row!.name;
}

/**
 * Makes the server finish `count` segments with data in them (`rows` rows of
 * `md5sPerRow` md5 strings each, in a table `filler`); returns their names.
 */
export async function switchSegments(
  cluster: Cluster,
  count: number,
  { rows = 2000, md5sPerRow = 1 }: { rows?: number; md5sPerRow?: number } = {},
): Promise<string[]> {
  const payload = md5sPerRow === 1 ? 'md5(g::text)' : `repeat(md5(g::text), ${md5sPerRow})`;
  const names: string[] = [];
  await cluster.query('CREATE TABLE IF NOT EXISTS filler (id serial, payload text)');
  for (let i = 0; i < count; i++) {
    await cluster.query(`INSERT INTO filler (payload) SELECT ${payload} FROM generate_series(1, ${rows}) g`);
    names.push(await currentSegment(cluster));
    await cluster.query('SELECT pg_switch_wal()');
  }
  return names;
}

/**
 * Waits until the archiver has archived `name` (and so everything before it);
 * on timeout the message says the last segment archived, the failures, and
 * the server log's tail.
 */
export async function waitArchived(
  cluster: Cluster,
  name: string,
  { what = `${name} archived`, ...options }: WaitOptions & { what?: string } = {},
): Promise<void> {
  let stats: ArchiverStats | undefined;
  await waitFor(
    () => `${what} (last archived ${stats?.last ?? 'none'}, ${stats?.failed ?? 0} failures)`,
    async () => {
      stats = await archiverStats(cluster);
      return stats.last && stats.last >= name ? true : undefined;
    },
    { cluster, ...options },
  );
}

/** Switches to a new segment and waits until everything before it is archived; returns the last one. */
export async function archiveEverything(cluster: Cluster, options: WaitOptions = {}): Promise<string> {
  // pg_switch_wal() does nothing on a segment with nothing in it.
  await cluster.query("SELECT pg_logical_emit_message(false, 'pgsnap-test', 'switch')");
  const name = await currentSegment(cluster);
  await cluster.query('SELECT pg_switch_wal()');
  await waitArchived(cluster, name, options);
  return name;
}

/** Sets archive_command to a shell line (quoted here for postgresql.conf) and makes the server use it. */
export async function useArchiveCommand(cluster: Cluster, line: string): Promise<void> {
  cluster.configure({ archive_command: `'${line.replaceAll("'", "''")}'` });
  await cluster.query('SELECT pg_reload_conf()');
}

/** The server log's lines from the archive_command's slow path (pgsnap wal-push). */
export function pushComplaints(cluster: Cluster): string[] {
  return cluster.log().match(/pgsnap: .*/g) ?? [];
}
