/**
 * Waits until the WAL a backup needs has left the server for the archive.
 *
 * pgsnap stops the backup with wait_for_archive => false and checks here
 * instead, with a bound and progress: the server's own wait has no bound, and
 * cancelling it loses the backup_label (research notes §1).
 */

import { formatDuration } from '#domain/backup/input';
import { TimeoutError } from '#domain/errors';
import type { Client } from '../postgres/client.ts';

export interface ArchiveWaitOptions {
  files: string[];
  timeoutMs: number;
  versionNum: number;
  /** On a standby the stop segment is archived only once the primary finishes it. */
  fromStandby: boolean;
  progress: (message: string) => void;
  maxPollMs?: number;
}

/**
 * Mirrors the server's XLogArchiveIsBusy(): a file is archived when its `.done`
 * status exists, or when neither status nor the file itself is left in pg_wal.
 */
async function archivedByStatusDir(client: Client, file: string): Promise<boolean> {
  const { rows } = await client.query<{ done: boolean; ready: boolean; present: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_ls_archive_statusdir() WHERE name = $1 || '.done') AS done,
            EXISTS (SELECT 1 FROM pg_ls_archive_statusdir() WHERE name = $1 || '.ready') AS ready,
            EXISTS (SELECT 1 FROM pg_ls_waldir() WHERE name = $1) AS present`,
    [file],
  );
  const row = rows[0]!;
  return row.done || (!row.ready && !row.present);
}

/** Without pg_monitor: the archiver works in name order, so a later last_archived_wal implies ours went. */
async function archivedByStats(client: Client, file: string): Promise<boolean> {
  const { rows } = await client.query<{ last: string | null }>(
    'SELECT last_archived_wal AS last FROM pg_stat_archiver',
  );
  const last = rows[0]?.last;
  return last !== null && last !== undefined && last >= file;
}

export async function waitForArchive(client: Client, options: ArchiveWaitOptions): Promise<number> {
  const started = Date.now();
  // Start polling fast: the archiver usually ships the stop segment within milliseconds of the switch.
  let pollMs = 5;
  let useStatusDir = options.versionNum >= 120000;
  let lastProgress = started;
  const pending = new Set(options.files);
  while (pending.size > 0) {
    for (const file of [...pending]) {
      let archived: boolean;
      try {
        archived = useStatusDir
          ? await archivedByStatusDir(client, file)
          : await archivedByStats(client, file);
      } catch (error) {
        if (!useStatusDir || (error as { code?: string }).code !== '42501') throw error;
        useStatusDir = false;
        archived = await archivedByStats(client, file);
      }
      if (archived) pending.delete(file);
    }
    if (pending.size === 0) break;
    const waited = Date.now() - started;
    if (waited > options.timeoutMs) {
      throw new TimeoutError(
        // The bound the operator gave, not the time measured: on a busy host a poll ends past it.
        `${[...pending].join(', ')} not archived after ${formatDuration(options.timeoutMs)}; check archive_command and ` +
          'pg_stat_archiver, then run pgsnap end again to keep waiting (the artifacts are kept)',
      );
    }
    if (Date.now() - lastProgress >= 5_000) {
      lastProgress = Date.now();
      options.progress(
        `waiting for ${[...pending].join(', ')} to be archived (${formatDuration(waited)} of ` +
          `${formatDuration(options.timeoutMs)})` +
          (options.fromStandby
            ? '; on a standby this needs the primary to finish the segment: run SELECT pg_switch_wal() there, ' +
              'or set archive_timeout on it'
            : ''),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
    pollMs = Math.min(pollMs * 2, options.maxPollMs ?? 1_000);
  }
  return Date.now() - started;
}
