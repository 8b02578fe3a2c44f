/** Checks that a backup can start and end here; each finding says what to change. */
import { type Client, type ServerFacts, serverFacts, setting } from '../postgres/client.ts';

export interface Finding {
  check: string;
  ok: boolean;
  /** An error stops `begin`; a warning only lowers what pgsnap can confirm. */
  severity: 'error' | 'warning';
  message: string;
}

export interface PreflightReport {
  facts: ServerFacts;
  findings: Finding[];
  ok: boolean;
}

async function scalar<T>(client: Client, sql: string, params: unknown[] = []): Promise<T> {
  const { rows } = await client.query<{ value: T }>(sql, params);
  return rows[0]!.value;
}

/** What each check is given: the session that will hold the backup, what the server is, and who we are. */
interface Checking {
  client: Client;
  facts: ServerFacts;
  role: string;
}

function finding(check: string, ok: boolean, severity: Finding['severity'], message: string): Finding {
  return { check, ok, severity, message };
}

/** The checks, in the order they are reported. */
const checks: Array<(c: Checking) => Promise<Finding>> = [
  mayRunBackupFunctions,
  walLevelKeepsEnough,
  archiveModeOn,
  archivingConfigured,
  archiverHealthy,
  archiveStatusReadable,
  historyFileReadable,
  backupDatabaseQuiet,
  oneBackend,
];

export async function preflight(client: Client): Promise<PreflightReport> {
  const facts = await serverFacts(client);
  const role = await scalar<string>(client, 'SELECT current_user AS value');
  const findings: Finding[] = [];
  for (const check of checks) findings.push(await check({ client, facts, role }));
  return { facts, findings, ok: findings.every((f) => f.ok || f.severity === 'warning') };
}

async function mayRunBackupFunctions({ client, facts, role }: Checking): Promise<Finding> {
  const [startFn, stopFn] =
    facts.versionNum >= 150000
      ? ['pg_backup_start(text, boolean)', 'pg_backup_stop(boolean)']
      : ['pg_start_backup(text, boolean, boolean)', 'pg_stop_backup(boolean, boolean)'];
  const mayBackup =
    facts.isSuperuser ||
    (await scalar<boolean>(
      client,
      `SELECT has_function_privilege(current_user, $1, 'EXECUTE')
          AND has_function_privilege(current_user, $2, 'EXECUTE') AS value`,
      [startFn, stopFn],
    ));
  return finding(
    'role',
    mayBackup,
    'error',
    mayBackup
      ? `role ${role} may run ${startFn.split('(')[0]} and ${stopFn.split('(')[0]}`
      : `role ${role} may not run the backup functions: GRANT EXECUTE ON FUNCTION ${startFn}, ${stopFn} TO ${role}`,
  );
}

async function walLevelKeepsEnough({ client }: Checking): Promise<Finding> {
  const walLevel = await setting(client, 'wal_level');
  const walOk = walLevel === 'replica' || walLevel === 'logical';
  return finding(
    'wal_level',
    walOk,
    'error',
    walOk
      ? `wal_level is ${walLevel}`
      : `wal_level is ${walLevel}; set wal_level = replica in postgresql.conf and restart the server`,
  );
}

async function archiveModeOn({ client, facts }: Checking): Promise<Finding> {
  const archiveMode = await setting(client, 'archive_mode');
  const modeOk = facts.inRecovery
    ? archiveMode === 'always'
    : archiveMode === 'on' || archiveMode === 'always';
  return finding(
    'archive_mode',
    modeOk,
    'error',
    modeOk
      ? `archive_mode is ${archiveMode}${facts.inRecovery ? ' on this standby' : ''}`
      : facts.inRecovery
        ? `archive_mode is ${archiveMode} on this standby; set archive_mode = always so the standby archives ` +
          'the WAL a backup needs, and restart it'
        : `archive_mode is ${archiveMode}; set archive_mode = on and restart the server`,
  );
}

async function archivingConfigured({ client, facts }: Checking): Promise<Finding> {
  const archiveCommand = await setting(client, 'archive_command');
  const archiveLibrary = facts.versionNum >= 150000 ? await setting(client, 'archive_library') : '';
  // SHOW answers '(disabled)' for a configured archive_command while archive_mode is off (show_archive_command).
  const commandSet = (archiveCommand !== '' && archiveCommand !== '(disabled)') || archiveLibrary !== '';
  return finding(
    'archive_command',
    commandSet,
    'error',
    commandSet
      ? archiveLibrary
        ? `archive_library is ${archiveLibrary}`
        : `archive_command is ${archiveCommand}`
      : archiveCommand === '(disabled)'
        ? 'archive_command is disabled because archive_mode is off; once archive_mode is on, make sure ' +
          "archive_command (e.g. 'pgsnap wal-push %p') or archive_library is set"
        : "no archive_command or archive_library is set; set archive_command = 'pgsnap wal-push %p' and reload",
  );
}

async function archiverHealthy({ client }: Checking): Promise<Finding> {
  const archiver = (
    await client.query<{
      last_archived_wal: string | null;
      last_archived_time: Date | null;
      last_failed_wal: string | null;
      last_failed_time: Date | null;
      failed_count: string;
    }>('SELECT * FROM pg_stat_archiver')
  ).rows[0]!;
  const failing =
    archiver.last_failed_time !== null &&
    (archiver.last_archived_time === null || archiver.last_failed_time > archiver.last_archived_time);
  return finding(
    'archiver',
    !failing,
    'error',
    failing
      ? `the archiver is failing: ${archiver.last_failed_wal} failed at ${archiver.last_failed_time?.toISOString()} ` +
          `and nothing was archived since; fix archive_command (see the server log) before taking a backup`
      : archiver.last_archived_wal
        ? `the archiver is healthy; last archived ${archiver.last_archived_wal}`
        : 'the archiver has not archived anything yet, and has not failed',
  );
}

async function archiveStatusReadable({ client, facts, role }: Checking): Promise<Finding> {
  const canSeeArchiveStatus =
    facts.versionNum >= 120000 &&
    (facts.isSuperuser ||
      (await scalar<boolean>(client, "SELECT pg_has_role('pg_monitor', 'MEMBER') AS value")));
  return finding(
    'archive_status',
    canSeeArchiveStatus,
    'warning',
    canSeeArchiveStatus
      ? 'end can see pg_wal/archive_status to confirm the stop segment was archived'
      : `role ${role} cannot read pg_wal/archive_status, so end falls back to pg_stat_archiver; ` +
          `GRANT pg_monitor TO ${role}`,
  );
}

/** A primary's end reads the backup history file; a standby writes none, but needs full_page_writes. */
async function historyFileReadable({ client, facts, role }: Checking): Promise<Finding> {
  if (facts.inRecovery) {
    const fullPageWrites = await setting(client, 'full_page_writes');
    return finding(
      'full_page_writes',
      fullPageWrites === 'on',
      'error',
      fullPageWrites === 'on'
        ? 'full_page_writes is on (required for a backup from a standby)'
        : 'full_page_writes is off; a backup from a standby needs it on, on the primary too',
    );
  }
  const canReadHistory =
    facts.isSuperuser ||
    (await scalar<boolean>(
      client,
      "SELECT has_function_privilege(current_user, 'pg_read_binary_file(text)', 'EXECUTE') AS value",
    ));
  return finding(
    'history_file',
    canReadHistory,
    'warning',
    canReadHistory
      ? 'end can read the backup history file from pg_wal'
      : `role ${role} cannot read the backup history file; GRANT EXECUTE ON FUNCTION pg_read_binary_file(text) TO ${role}`,
  );
}

/**
 * pg_backup_start runs in a statement, whose snapshot keeps this backend's
 * xmin for the whole wait for the checkpoint; PostgreSQL holds back pruning
 * and vacuum for it only in the tables of this database.
 */
async function backupDatabaseQuiet({ client, facts }: Checking): Promise<Finding> {
  const { database, others, waitSeconds } = (
    await client.query<{ database: string; others: number; waitSeconds: number }>(
      `SELECT current_database() AS database,
              (SELECT count(*)::int FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                  AND backend_type = 'client backend' AND application_name NOT LIKE 'pgsnap%') AS others,
              (SELECT round(setting::int * current_setting('checkpoint_completion_target')::float8)::int
                 FROM pg_settings WHERE name = 'checkpoint_timeout') AS "waitSeconds"`,
    )
  ).rows[0]!;
  if (facts.inRecovery) {
    // No pruning here; but hot_standby_feedback sends this backend's xmin to the primary, for every database.
    const feedback = (await setting(client, 'hot_standby_feedback')) === 'on';
    return finding(
      'backup_database',
      !feedback,
      'warning',
      feedback
        ? 'hot_standby_feedback is on: the snapshot pg_backup_start keeps while it waits for the restartpoint ' +
            `(about ${waitSeconds} s unless --fast) reaches the primary, which cannot prune or vacuum the rows ` +
            'updated or deleted meanwhile, in any database'
        : 'hot_standby_feedback is off: the snapshot pg_backup_start keeps while it waits does not reach the primary',
    );
  }
  return finding(
    'backup_database',
    others === 0,
    'warning',
    others === 0
      ? `no other session uses database ${database}, where pg_backup_start holds a snapshot while it waits ` +
          'for the checkpoint'
      : `${others} other session${others === 1 ? '' : 's'} use${others === 1 ? 's' : ''} database ${database}, ` +
          'where pg_backup_start runs: its statement keeps a snapshot while it waits for the checkpoint (about ' +
          `${waitSeconds} s, checkpoint_completion_target x checkpoint_timeout, unless --fast), and meanwhile ` +
          "PostgreSQL cannot prune or vacuum the rows updated or deleted in this database's tables, which slows " +
          'a busy workload more the longer it lasts. Set PGDATABASE for pgsnap to a database no workload uses ' +
          `(${database === 'postgres' ? 'CREATE DATABASE pgsnap' : 'postgres, or CREATE DATABASE pgsnap'})`,
  );
}

/** Outside a transaction a pooler in transaction mode may answer each statement from another backend. */
async function oneBackend({ client, facts }: Checking): Promise<Finding> {
  const secondPid = await scalar<number>(client, 'SELECT pg_backend_pid() AS value');
  const sameSession = secondPid === facts.backendPid;
  return finding(
    'session',
    sameSession,
    'error',
    sameSession
      ? 'the connection keeps one backend (no pooler in transaction mode)'
      : 'consecutive statements ran on different backends: a pooler in transaction mode cannot hold a backup ' +
          'session; point PGHOST/PGPORT at the server itself',
  );
}
