/**
 * The checks of a restore on its target host, on the running restored
 * server: recovery reached consistency, pg_amcheck over the scope the
 * request asked for, no checksum failure counted (pg_stat_database), and the
 * operator's SQL check with its expected answer. Each says what it found; a
 * check that cannot run is a failed check with the reason, never skipped
 * silently.
 */
import { messageOf } from '#domain/errors';
import type { CheckOutcome, HostReport } from '#domain/repository/host-report';
import type { RestoreRecord } from '#domain/repository/restore-record';
import { type Client, connect } from '../postgres/client.ts';
import { runAmcheckInBackground } from './checks.ts';
import { pgVersionOf, type RestoredServer, serverLog } from './restored-server.ts';

async function withClient<T>(
  server: RestoredServer,
  database: string | undefined,
  work: (c: Client) => Promise<T>,
) {
  const client = await connect({
    applicationName: 'pgsnap restore checks',
    env: { ...server.env, ...(database ? { PGDATABASE: database } : {}) },
  });
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => {});
  }
}

async function outcome(work: () => Promise<CheckOutcome>, what: string): Promise<CheckOutcome> {
  try {
    return await work();
  } catch (error) {
    return { ok: false, detail: `${what} could not run: ${messageOf(error)}` };
  }
}

function consistency(server: RestoredServer): CheckOutcome {
  // The server answered queries, which it does only once consistent; the log line is the server's own word.
  const said = serverLog(server).includes('consistent recovery state reached');
  return {
    ok: true,
    detail: said
      ? 'the server logged "consistent recovery state reached" and accepts connections'
      : 'the server accepts connections (only a consistent server does)',
  };
}

async function amcheck(
  server: RestoredServer,
  scope: RestoreRecord['checks']['amcheck'],
  connection: { clientArgs: string[]; inRecovery: boolean },
): Promise<CheckOutcome | undefined> {
  if (scope === 'none') return undefined;
  const major = Number(pgVersionOf(server.pgdata));
  const args = scope === 'all' ? ['--all'] : ['-d', scope.database];
  const run = await runAmcheckInBackground({ clientArgs: connection.clientArgs, major }, args, {
    installMissing: !connection.inRecovery,
  });
  const where = scope === 'all' ? 'every database' : `database ${scope.database}`;
  if (!run) {
    return {
      ok: false,
      detail:
        major < 14
          ? `pg_amcheck needs PostgreSQL 14 or later; this cluster is ${major}: set checks.amcheck to none`
          : 'pg_amcheck is not installed on this host (the postgresql-client package): install it, or set checks.amcheck to none',
    };
  }
  return {
    ok: run.ok,
    detail: run.ok
      ? `pg_amcheck --heapallindexed found no corruption in ${where}`
      : `pg_amcheck --heapallindexed in ${where}: ${run.output.slice(0, 2000)}`,
  };
}

async function checksums(server: RestoredServer): Promise<CheckOutcome> {
  return withClient(server, undefined, async (client) => {
    const { rows } = await client.query<{ on: string; failures: string }>(
      `SELECT current_setting('data_checksums') AS on,
              coalesce(sum(checksum_failures), 0)::text AS failures FROM pg_stat_database`,
    );
    const row = rows[0]!;
    const failures = Number(row.failures);
    if (row.on !== 'on')
      return { ok: true, detail: 'data checksums are off in this cluster: no page checksums to count' };
    return {
      ok: failures === 0,
      detail: `${failures} checksum failure${failures === 1 ? '' : 's'} in pg_stat_database`,
    };
  });
}

async function sqlCheck(
  server: RestoredServer,
  sql: NonNullable<RestoreRecord['checks']['sql']>,
): Promise<CheckOutcome> {
  return withClient(server, sql.database, async (client) => {
    // Every value as PostgreSQL's own text: `t`, `42`, `2026-11-21 14:30:00+00`, as psql shows it.
    const result = await client.query({
      text: sql.query,
      rowMode: 'array',
      types: { getTypeParser: () => (value: string) => value },
    });
    const first = (result.rows[0] as unknown[] | undefined)?.[0];
    const got = first === undefined ? '(no rows)' : first === null ? '(null)' : String(first);
    return {
      ok: got === sql.expect,
      detail:
        got === sql.expect
          ? `${sql.query} in ${sql.database} returned ${JSON.stringify(got)}, as expected`
          : `${sql.query} in ${sql.database} returned ${JSON.stringify(got)}, expected ${JSON.stringify(sql.expect)}`,
    };
  });
}

export async function checkRestoredServer(
  server: RestoredServer,
  record: RestoreRecord,
  connection: { clientArgs: string[]; inRecovery: boolean },
): Promise<HostReport['checks']> {
  const amcheckOutcome = await amcheck(server, record.checks.amcheck, connection).catch(
    (error: unknown): CheckOutcome => ({
      ok: false,
      detail: `pg_amcheck could not run: ${messageOf(error)}`,
    }),
  );
  return {
    consistency: consistency(server),
    ...(amcheckOutcome ? { amcheck: amcheckOutcome } : {}),
    checksums: await outcome(() => checksums(server), 'the checksum failure count'),
    ...(record.checks.sql
      ? { sql: await outcome(() => sqlCheck(server, record.checks.sql!), 'the SQL check') }
      : {}),
  };
}
