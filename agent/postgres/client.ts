/**
 * PostgreSQL access for the agent: connections from libpq environment
 * variables, the hardened backup session, and version-dependent backup calls.
 */
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import type pg from 'pg';
import { ConnectionError, PreconditionError } from '#domain/errors';

export type Client = pg.Client;

/** Where `pg` will connect, as libpq would: PGHOST, else the Debian socket directory, else localhost. */
export function connectionTarget(env: NodeJS.ProcessEnv = process.env): { host: string; port: number } {
  const port = Number(env.PGPORT ?? 5432);
  let host = env.PGHOST;
  if (!host) host = existsSync(`/var/run/postgresql/.s.PGSQL.${port}`) ? '/var/run/postgresql' : 'localhost';
  return { host, port };
}

export interface ConnectOptions {
  applicationName?: string;
  /** libpq settings other than this process's own (the agent service connecting for a begin). */
  env?: NodeJS.ProcessEnv;
}

/**
 * What pg would otherwise take from process.env, taken from `env` instead, as
 * libpq would: user defaults to the OS user, database to the user, the password
 * to PGPASSWORD or else the password file, TLS to PGSSLMODE.
 */
async function settingsFrom(env: NodeJS.ProcessEnv, host: string, port: number) {
  const user = env.PGUSER || env.USER || userInfo().username;
  const database = env.PGDATABASE || user;
  const { passwordFromFile } = await import('./pgpass.ts');
  const mode = env.PGSSLMODE;
  return {
    user,
    database,
    // None found: pg then fails with "client password must be a non-empty string" (explainConnectError).
    password:
      env.PGPASSWORD ?? (async () => (await passwordFromFile(env, { host, port, database, user })) ?? ''),
    ssl:
      mode === 'require' || mode === 'verify-ca' || mode === 'verify-full' || mode === 'prefer'
        ? true
        : mode === 'no-verify'
          ? { rejectUnauthorized: false }
          : false,
    ...(env.PGOPTIONS ? { options: env.PGOPTIONS } : {}),
  };
}

/** Opens a connection configured from PG* variables; failures become messages that say what to do. */
export async function connect(options: ConnectOptions = {}): Promise<Client> {
  const env = options.env ?? process.env;
  const { host, port } = connectionTarget(env);
  // Loaded on first use: commands that never connect (status, abort, the CLI side of begin) start faster.
  const { default: driver } = await import('pg');
  const client = new driver.Client({
    ...(options.env && options.env !== process.env ? await settingsFrom(env, host, port) : {}),
    host,
    port,
    application_name: options.applicationName ?? 'pgsnap',
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    connectionTimeoutMillis: Number(env.PGCONNECT_TIMEOUT ?? 10) * 1000,
  });
  // A dropped connection surfaces as an 'error' event; without a listener it would crash the process.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw explainConnectError(error, host, port, env);
  }
  return client;
}

function explainConnectError(error: unknown, host: string, port: number, env: NodeJS.ProcessEnv): Error {
  const where = `${host}:${port}`;
  const user = env.PGUSER ?? env.USER ?? 'the current user';
  const code = (error as { code?: string }).code;
  const message = (error as Error).message ?? String(error);
  if (code === 'ECONNREFUSED' || code === 'ENOENT') {
    return new ConnectionError(
      `cannot connect to PostgreSQL at ${where}: no server is listening. ` +
        'Start the server, or point PGHOST/PGPORT at it.',
      { cause: error },
    );
  }
  if (code === '28P01' || code === '28000') {
    return new ConnectionError(
      `PostgreSQL at ${where} refused user ${user}: ${message}. ` +
        'Check PGUSER and set PGPASSWORD or a PGPASSFILE entry for this host, port and user.',
      { cause: error },
    );
  }
  // pg has no error code for this: it finds no password (PGPASSWORD, PGPASSFILE) when SCRAM asks for one.
  if (/client password must be a (non-empty )?string/.test(message)) {
    return new ConnectionError(
      `PostgreSQL at ${where} asks user ${user} for a password and none was found. ` +
        'Set PGPASSWORD or a PGPASSFILE entry for this host, port and user.',
      { cause: error },
    );
  }
  if (code === '3D000') {
    return new ConnectionError(`${message} on ${where}: set PGDATABASE to a database that exists.`, {
      cause: error,
    });
  }
  return new ConnectionError(`cannot connect to PostgreSQL at ${where}: ${message}`, { cause: error });
}

export interface ServerFacts {
  versionNum: number;
  version: string;
  systemIdentifier: string;
  inRecovery: boolean;
  segmentSize: number;
  backendPid: number;
  isSuperuser: boolean;
  /**
   * shared_preload_libraries and the data directory, which PostgreSQL shows only to a superuser or a
   * member of pg_read_all_settings (pg_settings hides them from others): what a restore target needs too.
   */
  sharedPreloadLibraries?: string[];
  dataDirectory?: string;
}

/** shared_preload_libraries as a list: comma-separated names, each maybe double-quoted. */
export function preloadList(setting: string): string[] {
  return setting
    .split(',')
    .map((name) => name.trim().replace(/^"(.*)"$/, '$1'))
    .filter((name) => name !== '');
}

export async function serverFacts(client: Client): Promise<ServerFacts> {
  const { rows } = await client.query<{
    version_num: string;
    version: string;
    system_identifier: string;
    in_recovery: boolean;
    segment_size: string;
    backend_pid: number;
    is_superuser: boolean;
    preload: string | null;
    data_directory: string | null;
  }>(`SELECT current_setting('server_version_num') AS version_num,
             current_setting('server_version') AS version,
             (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
             pg_is_in_recovery() AS in_recovery,
             (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS segment_size,
             pg_backend_pid() AS backend_pid,
             (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS is_superuser,
             (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries') AS preload,
             (SELECT setting FROM pg_settings WHERE name = 'data_directory') AS data_directory`);
  const row = rows[0]!;
  const versionNum = Number(row.version_num);
  // Before 11 pg_settings reports wal_segment_size in 8 kB blocks, later in bytes.
  const segmentSize = versionNum < 110000 ? Number(row.segment_size) * 8192 : Number(row.segment_size);
  if (versionNum < 90600) {
    throw new PreconditionError(
      `PostgreSQL ${row.version} has no non-exclusive backup API; pgsnap needs 9.6 or later`,
    );
  }
  return {
    versionNum,
    version: row.version,
    systemIdentifier: row.system_identifier,
    inRecovery: row.in_recovery,
    segmentSize,
    backendPid: row.backend_pid,
    isSuperuser: row.is_superuser,
    ...(row.preload !== null ? { sharedPreloadLibraries: preloadList(row.preload) } : {}),
    ...(row.data_directory ? { dataDirectory: row.data_directory } : {}),
  };
}

/**
 * Makes a session fit to hold a backup for as long as it takes. If the session
 * closes, PostgreSQL aborts the backup, so nothing may time it out: every
 * timeout that applies to a session is user-settable, so it is switched off here
 * (wal-g#1336, pgBackRest#2789).
 */
export async function hardenSession(client: Client, versionNum: number): Promise<void> {
  const settings: Array<[string, string]> = [
    ['statement_timeout', '0'],
    ['idle_in_transaction_session_timeout', '0'],
    ['lock_timeout', '0'],
    // Server-side keepalives for the backend's socket (ignored on a Unix socket).
    ['tcp_keepalives_idle', '60'],
    ['tcp_keepalives_interval', '10'],
    ['tcp_keepalives_count', '6'],
  ];
  if (versionNum >= 140000) {
    settings.push(['idle_session_timeout', '0']);
    // Without it a backend whose holder went away keeps waiting for pg_backup_start's spread checkpoint
    // (minutes) before it notices and aborts the backup; with it, it notices within a second.
    settings.push(['client_connection_check_interval', '1s']);
  }
  if (versionNum >= 170000) settings.push(['transaction_timeout', '0']);
  // One round trip: set_config over the pairs, in order.
  await client.query(
    'SELECT set_config(name, value, false) FROM unnest($1::text[], $2::text[]) AS s(name, value)',
    [settings.map(([name]) => name), settings.map(([, value]) => value)],
  );
}

/** pg_backup_start on 15+, pg_start_backup(label, fast, false) on 9.6–14. Returns the start LSN text. */
export async function startBackup(client: Client, versionNum: number, label: string, fast: boolean) {
  const sql =
    versionNum >= 150000
      ? 'SELECT pg_backup_start($1, $2)::text AS lsn'
      : 'SELECT pg_start_backup($1, $2, false)::text AS lsn';
  const { rows } = await client.query<{ lsn: string }>(sql, [label, fast]);
  return rows[0]!.lsn;
}

export interface StopResult {
  lsn: string;
  labelFile: string;
  tablespaceMap: string;
}

/**
 * Ends the backup without waiting for archiving: if the server's own wait were
 * cancelled, backup mode would already be over and the label lost (see the
 * research notes, §1). pgsnap checks the archive itself afterwards.
 */
export async function stopBackup(client: Client, versionNum: number): Promise<StopResult> {
  let sql: string;
  if (versionNum >= 150000) sql = 'SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(false)';
  else if (versionNum >= 100000)
    sql = 'SELECT lsn::text, labelfile, spcmapfile FROM pg_stop_backup(false, false)';
  else sql = 'SELECT lsn::text, labelfile, spcmapfile FROM pg_stop_backup(false)';
  const { rows } = await client.query<{ lsn: string; labelfile: string; spcmapfile: string | null }>(sql);
  const row = rows[0]!;
  return { lsn: row.lsn, labelFile: row.labelfile, tablespaceMap: row.spcmapfile ?? '' };
}

export async function currentTimeline(client: Client): Promise<number> {
  const { rows } = await client.query<{ timeline_id: number }>(
    'SELECT timeline_id FROM pg_control_checkpoint()',
  );
  return Number(rows[0]!.timeline_id);
}

export async function setting(client: Client, name: string): Promise<string> {
  const { rows } = await client.query<{ value: string | null }>('SELECT current_setting($1, true) AS value', [
    name,
  ]);
  return rows[0]?.value ?? '';
}
