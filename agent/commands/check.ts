/**
 * `pgsnap check`: archiving works end to end, as pgBackRest's `check` proves
 * it: the server switches to a new WAL segment, and the one it just finished
 * must reach the repository within --timeout. Preflight reads what the
 * server says about its archiver; this watches a segment arrive.
 */
import { formatDuration, parseDuration } from '#domain/backup/input';
import { PreconditionError } from '#domain/errors';
import { parseLsn, walFileNameBefore } from '#domain/wal/lsn';
import { parse } from '../cli/args.ts';
import { printUsage } from '../cli/usage.ts';
import { createOutput } from '../host/output.ts';
import { open, requireRepositoryChoice } from '../host/repository.ts';
import { defaultCheckTimeoutMs } from '../host/settings.ts';
import { type Client, connect, currentTimeline, serverFacts } from '../postgres/client.ts';

export const checkUsage = `pgsnap check --repo URL --cluster NAME [--timeout D] [--json]

Forces a WAL switch on the server (pg_switch_wal(), after a restore point so
that there is WAL to switch) and waits until the segment it finished is in
the repository: archive_command, the repository and its pin all work. Prints
the segment and how long it took to arrive. Exits 1 when it is not there
within --timeout (default 60s), with what pg_stat_archiver says; 3 when the
server is a standby or the repository belongs to another cluster.`;

export interface CheckReport {
  segment: string;
  systemIdentifier: string;
  repository: string;
  archived: boolean;
  waitedMs: number;
  /** pg_stat_archiver's last failure, when the segment did not arrive. */
  lastFailure?: { wal: string | null; at: string | null };
}

export async function checkCommand(args: string[]): Promise<number> {
  const { values } = parse('check', args, { timeout: { type: 'string' } });
  if (values.help) return printUsage(checkUsage);
  const timeoutMs = values.timeout ? parseDuration(values.timeout, '--timeout') : defaultCheckTimeoutMs;
  const out = createOutput(values.json);
  const choice = requireRepositoryChoice('check', values);
  const client = await connect();
  try {
    const facts = await serverFacts(client);
    if (facts.inRecovery) {
      throw new PreconditionError(
        'pgsnap check switches WAL, which a standby cannot do: run it on the primary (with archive_mode = ' +
          'always, the standby archives the same segments once they reach it)',
      );
    }
    const repository = await open(choice);
    try {
      const pin = await repository.readPin();
      if (pin && pin.systemIdentifier !== facts.systemIdentifier) {
        throw new PreconditionError(
          `${repository.url} holds the WAL of ${choice.cluster} with system identifier ${pin.systemIdentifier}, ` +
            `but this server is ${facts.systemIdentifier}: check --cluster, --repo and archive_command`,
        );
      }
      const segment = await switchWal(client, facts.segmentSize);
      out.progress(
        `switched WAL: waiting for ${segment} in ${repository.store.url} (at most ${formatDuration(timeoutMs)})`,
      );
      const started = Date.now();
      let archived = false;
      for (let pollMs = 20; ; pollMs = Math.min(pollMs * 2, 1_000)) {
        const current = pin ?? (await repository.readPin());
        archived = current !== undefined && (await repository.hasWal(current, segment));
        if (archived || Date.now() - started >= timeoutMs) break;
        await new Promise((r) => setTimeout(r, pollMs));
      }
      const report: CheckReport = {
        segment,
        systemIdentifier: facts.systemIdentifier,
        repository: repository.store.url,
        archived,
        waitedMs: Date.now() - started,
        ...(archived ? {} : { lastFailure: await lastFailure(client) }),
      };
      out.result(
        { ...report },
        archived
          ? [`ok: ${segment} reached ${repository.store.url} in ${formatDuration(report.waitedMs)}`]
          : [
              `FAILED: ${segment} is not in ${repository.store.url} after ${formatDuration(timeoutMs)}`,
              report.lastFailure?.wal
                ? `  pg_stat_archiver: last failed ${report.lastFailure.wal} at ${report.lastFailure.at}; ` +
                  "the server log has archive_command's message"
                : '  pg_stat_archiver records no failure: is archive_command pgsnap wal-push with this repository?',
            ],
      );
      return archived ? 0 : 1;
    } finally {
      repository.close();
    }
  } finally {
    await client.end();
  }
}

/**
 * The segment pg_switch_wal() finished. Without WAL since the last switch the
 * switch is a no-op; a restore point writes a record first (pgBackRest does
 * the same), when the role may create one.
 */
async function switchWal(client: Client, segmentSize: number): Promise<string> {
  await client.query("SELECT pg_create_restore_point('pgsnap check')").catch(() => {});
  try {
    const { rows } = await client.query<{ lsn: string }>('SELECT pg_switch_wal()::text AS lsn');
    // pg_switch_wal() returns the end of the switch record; the segment holding the byte before it is the one
    // finished (not pg_walfile_name(), which maps a segment boundary to the previous segment only up to 16).
    return walFileNameBefore(await currentTimeline(client), parseLsn(rows[0]!.lsn), segmentSize);
  } catch (error) {
    if ((error as { code?: string }).code !== '42501') throw error;
    throw new PreconditionError(
      `${(error as Error).message}: pgsnap check needs GRANT EXECUTE ON FUNCTION pg_switch_wal() TO ` +
        `${client.user ?? 'the role'} (as a superuser)`,
      { cause: error },
    );
  }
}

async function lastFailure(client: Client): Promise<{ wal: string | null; at: string | null }> {
  const { rows } = await client.query<{ wal: string | null; at: string | null }>(
    'SELECT last_failed_wal AS wal, last_failed_time::text AS at FROM pg_stat_archiver',
  );
  return rows[0] ?? { wal: null, at: null };
}
