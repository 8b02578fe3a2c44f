/**
 * pgsnap's backup sessions as the server sees them: every connection whose
 * application_name is `pgsnap:<backupId>` (session.ts sets it), whoever
 * started it: another OS user, another state directory, another host. The
 * local state directory knows only its own; the server knows them all, so
 * begin refuses a second backup of the cluster and status shows one begun
 * elsewhere. pid, usename, application_name and backend_start are visible to
 * every role in pg_stat_activity; client_addr only to the session's own role,
 * superusers and pg_read_all_stats (null otherwise).
 */
import type { Client } from '../postgres/client.ts';

export const backupSessionPrefix = 'pgsnap:';

export interface ServerBackupSession {
  /** The backend holding the session. */
  serverPid: number;
  backupId: string;
  /** The role it connected as. */
  role: string;
  /** Where it connected from: an address, `local socket`, or undefined when this role may not see it. */
  client: string | undefined;
  /** When the session connected: just before its pg_backup_start. */
  since: string;
}

/** The pgsnap backup sessions on the server other than this connection's own. */
export async function otherBackupSessions(client: Client): Promise<ServerBackupSession[]> {
  const { rows } = await client.query<{
    pid: number;
    app: string;
    role: string | null;
    addr: string | null;
    local: boolean;
    since: Date;
  }>(
    `SELECT pid, application_name AS app, usename AS role, client_addr::text AS addr,
            (client_port = -1) AS local, backend_start AS since
       FROM pg_stat_activity
      WHERE application_name LIKE $1 AND pid <> pg_backend_pid()
      ORDER BY backend_start`,
    [`${backupSessionPrefix}%`],
  );
  return rows.map((r) => ({
    serverPid: r.pid,
    backupId: r.app.slice(backupSessionPrefix.length),
    role: r.role ?? 'unknown role',
    client: r.addr ?? (r.local ? 'local socket' : undefined),
    since: new Date(r.since).toISOString(),
  }));
}

/** One session in a sentence: who holds it, since when, from where. */
export function describeBackupSession(s: ServerBackupSession): string {
  return (
    `backup ${s.backupId} held by server pid ${s.serverPid} since ${s.since}, role ${s.role}` +
    (s.client ? ` from ${s.client}` : '')
  );
}
