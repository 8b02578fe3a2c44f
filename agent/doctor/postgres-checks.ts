/** The database side: the role's rights and settings (preflight's findings), pgsnap's archive_command, the archiver, pg_wal's room. */
import { messageOf } from '#domain/errors';
import type { ArchiveHealth } from '../metrics/archive-health.ts';
import { type Client, setting } from '../postgres/client.ts';
import type { PreflightReport } from '../session/preflight.ts';
import { type CheckResult, fail, ok, warn } from './check.ts';

/** preflight's findings: an error is a failure, a warning a warning. */
export function preflightChecks(report: PreflightReport): CheckResult[] {
  return report.findings.map((f) => ({
    check: f.check,
    status: f.ok ? 'ok' : f.severity === 'error' ? 'fail' : 'warn',
    message: f.message,
  }));
}

/** Whether archive_command is pgsnap's own, for this repository and cluster (warns otherwise, with what it is). */
export async function archiveCommandCheck(
  client: Client,
  repository: { url: string; cluster: string } | undefined,
): Promise<CheckResult> {
  const line = await setting(client, 'archive_command');
  const library = await setting(client, 'archive_library').catch(() => '');
  if (library) return warn('archive_command.pgsnap', `archive_library is ${library}, not pgsnap wal-push`);
  if (!/\bwal-push %p\b/.test(line)) {
    return warn(
      'archive_command.pgsnap',
      `archive_command is ${JSON.stringify(line)}, not pgsnap's: backups and restores from this repository need ` +
        "the WAL in it. Print pgsnap's line with pgsnap wal-push --print-command --repo URL --cluster NAME",
    );
  }
  if (repository && !(line.includes(repository.url) && line.includes(repository.cluster))) {
    return warn(
      'archive_command.pgsnap',
      `archive_command is pgsnap's, but not for ${repository.url} cluster ${repository.cluster}: ${line}. ` +
        'The WAL goes elsewhere than the backups; check --repo and --cluster on both sides',
    );
  }
  return ok('archive_command.pgsnap', "archive_command is pgsnap's wal-push");
}

/** Ready files that wait longer than this mean the archiver is behind, even without a failure. */
const laggingSeconds = 300;

export function archiverHealthCheck(health: ArchiveHealth): CheckResult {
  if (health.readyFiles > 0 && health.archiveLagSeconds > laggingSeconds) {
    return fail(
      'archiver.backlog',
      `${health.readyFiles} WAL file(s) wait to be archived, the last archived ${Math.round(health.archiveLagSeconds)} s ago` +
        `${health.lastFailedWal ? ` (last failure: ${health.lastFailedWal} at ${health.lastFailedTime?.toISOString()})` : ''}; ` +
        "a restore would lose everything since. See the PostgreSQL log for archive_command's error",
    );
  }
  return ok(
    'archiver.backlog',
    `${health.readyFiles} WAL file(s) waiting; ${health.archivedCount} archived, ${health.failedCount} failures since the statistics were reset`,
  );
}

/** pg_wal's file system has room for at least one max_wal_size, with a warning under two. */
export async function walRoomCheck(client: Client, health: ArchiveHealth): Promise<CheckResult> {
  if (health.walVolumeFreeBytes === undefined) {
    return warn(
      'pg_wal.room',
      `cannot tell the free space of ${health.walDirectory}: ${health.problems.join('; ')}`,
    );
  }
  let maxWalBytes: number;
  try {
    maxWalBytes = Number(
      (
        await client.query<{ bytes: string }>(
          "SELECT pg_size_bytes(setting || coalesce(unit, ''))::text AS bytes FROM pg_settings WHERE name = 'max_wal_size'",
        )
      ).rows[0]!.bytes,
    );
  } catch (error) {
    return warn('pg_wal.room', `cannot read max_wal_size: ${messageOf(error)}`);
  }
  const mib = (bytes: number) => `${Math.round(bytes / 1024 / 1024)} MiB`;
  const free = health.walVolumeFreeBytes;
  const text = `${mib(free)} free on the file system of ${health.walDirectory} (max_wal_size ${mib(maxWalBytes)})`;
  if (free < maxWalBytes) {
    return fail(
      'pg_wal.room',
      `${text}: less than max_wal_size, and PostgreSQL stops when pg_wal is full. Free space or grow the volume; ` +
        'check that archiving keeps up and that no replication slot holds old WAL (pg_replication_slots)',
    );
  }
  if (free < 2 * maxWalBytes) return warn('pg_wal.room', `${text}: less than twice max_wal_size`);
  return ok('pg_wal.room', text);
}
