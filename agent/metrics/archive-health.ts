/**
 * One sample of WAL archive health, as the agent service takes it every
 * minute and `pgsnap doctor` once: pg_stat_archiver, the `.ready` files that
 * wait in pg_wal/archive_status, the free space of pg_wal's file system, and
 * the async pusher's backlog.
 */
import { readdirSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { messageOf } from '#domain/errors';
import type { Client } from '../postgres/client.ts';

export interface ArchiveHealth {
  /** When the sample was taken (this host's clock, which also stamps the metrics). */
  at: Date;
  archivedCount: number;
  /** pg_stat_archiver.failed_count: every failed archive_command since the statistics were reset. */
  failedCount: number;
  lastArchivedWal: string | null;
  lastArchivedTime: Date | null;
  lastFailedWal: string | null;
  lastFailedTime: Date | null;
  readyFiles: number;
  /** The oldest `.ready` file's age; 0 when none waits. */
  oldestReadySeconds: number;
  /**
   * Now minus the last archived file's time while `.ready` files wait, else
   * 0: how much WAL a restore would lose if pg_wal were lost now. Before the
   * first archived file, the oldest `.ready` file's age stands in.
   */
  archiveLagSeconds: number;
  walDirectory: string | undefined;
  /** Undefined where pg_wal is out of this user's reach (the reason is in `problems`). */
  walVolumeFreeBytes: number | undefined;
  walVolumeTotalBytes: number | undefined;
  /** Undefined when no async pusher's spool is found (wal-push without --async). */
  pusherBacklog: number | undefined;
  /** `.error` status files in the pusher's spool: files whose last push failed. */
  pusherErrors: number | undefined;
  /** What could not be sampled, and why. */
  problems: string[];
}

export interface SampleOptions {
  /** The cluster's name: the async pusher's spool is `<spool root>/<cluster>/wal-push-<system identifier>`. */
  cluster?: string;
  /** The state directory wal-push --async uses (its --spool-dir, or its PGSNAP_STATE_DIR). */
  spoolRoot?: string;
  now?: () => Date;
}

interface ArchiverRow {
  archived_count: string;
  failed_count: string;
  last_archived_wal: string | null;
  last_archived_time: Date | null;
  last_failed_wal: string | null;
  last_failed_time: Date | null;
  data_directory: string;
  system_identifier: string;
  version_num: number;
}

/**
 * Samples the cluster `client` is connected to. The ready files are read
 * with pg_ls_archive_statusdir() (PostgreSQL 12+, superuser or pg_monitor),
 * so the agent needs no access to the data directory for them; only the free
 * space needs pg_wal's path to be reachable from this user.
 */
export async function sampleArchiveHealth(
  client: Client,
  options: SampleOptions = {},
): Promise<ArchiveHealth> {
  const problems: string[] = [];
  const row = (
    await client.query<ArchiverRow>(
      `SELECT a.archived_count::text, a.failed_count::text, a.last_archived_wal, a.last_archived_time,
              a.last_failed_wal, a.last_failed_time, current_setting('data_directory') AS data_directory,
              (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
              current_setting('server_version_num')::int AS version_num
         FROM pg_stat_archiver a`,
    )
  ).rows[0]!;
  const at = (options.now ?? (() => new Date()))();
  const walDirectory = join(row.data_directory, row.version_num >= 100000 ? 'pg_wal' : 'pg_xlog');

  let ready: Array<{ name: string; modified: Date }> = [];
  if (row.version_num >= 120000) {
    const { rows } = await client.query<{ name: string; modification: Date }>(
      "SELECT name, modification FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'",
    );
    ready = rows.map((r) => ({ name: r.name.slice(0, -'.ready'.length), modified: r.modification }));
  } else {
    problems.push(
      `PostgreSQL ${row.version_num} has no pg_ls_archive_statusdir(); ready files are not counted before 12`,
    );
  }
  const oldest = ready.reduce<Date | undefined>((o, r) => (o && o <= r.modified ? o : r.modified), undefined);
  const secondsSince = (time: Date) => Math.max(0, (at.getTime() - time.getTime()) / 1000);
  const oldestReadySeconds = oldest ? secondsSince(oldest) : 0;
  const archiveLagSeconds =
    ready.length === 0
      ? 0
      : row.last_archived_time
        ? secondsSince(row.last_archived_time)
        : oldestReadySeconds;

  let walVolumeFreeBytes: number | undefined;
  let walVolumeTotalBytes: number | undefined;
  try {
    // statfs follows a pg_wal that is a link to a volume of its own (initdb --waldir).
    const fs = statfsSync(walDirectory);
    walVolumeFreeBytes = fs.bavail * fs.bsize;
    walVolumeTotalBytes = fs.blocks * fs.bsize;
  } catch (error) {
    problems.push(`the free space of ${walDirectory} is unknown: ${messageOf(error)}`);
  }

  let pusherBacklog: number | undefined;
  let pusherErrors: number | undefined;
  if (options.cluster && options.spoolRoot) {
    const spool = join(options.spoolRoot, options.cluster, `wal-push-${row.system_identifier}`);
    let files: string[] | undefined;
    try {
      files = readdirSync(spool);
    } catch {
      // No spool: this cluster's archive_command is not wal-push --async (or runs with another state directory).
    }
    if (files) {
      // `<file>.<status key>.ok` (wal/archiver.ts): the pusher stored that file.
      const pushed = new Set(files.map((f) => /^(.+)\.\d+-\d+-\d+\.\d{9}\.ok$/.exec(f)?.[1]));
      pusherBacklog = ready.filter((r) => !pushed.has(r.name)).length;
      pusherErrors = files.filter((f) => f.endsWith('.error')).length;
    }
  }

  return {
    at,
    archivedCount: Number(row.archived_count),
    failedCount: Number(row.failed_count),
    lastArchivedWal: row.last_archived_wal,
    lastArchivedTime: row.last_archived_time,
    lastFailedWal: row.last_failed_wal,
    lastFailedTime: row.last_failed_time,
    readyFiles: ready.length,
    oldestReadySeconds,
    archiveLagSeconds,
    walDirectory,
    walVolumeFreeBytes,
    walVolumeTotalBytes,
    pusherBacklog,
    pusherErrors,
    problems,
  };
}
