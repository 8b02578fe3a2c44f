/**
 * The restored server on a restore's target host: started by a systemd unit
 * or by pg_ctl as the owner of PGDATA, watched until recovery is where the
 * restore wants it, and stopped again for a drill's teardown. PostgreSQL
 * refuses to run as root, so as root pg_ctl runs through runuser.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { PreconditionError, RecoveryTargetNotReachedError, TimeoutError } from '#domain/errors';
import type { RestoreMode } from '#domain/repository/restore-record';
import { parseLsn } from '#domain/wal/lsn';
import { fromEnvironment } from '../host/settings.ts';
import { type Client, connect } from '../postgres/client.ts';
import { makeDirectoryAsOwner } from '../postgres/owned-paths.ts';
import { userName } from './server-can-run.ts';

/** How the server is started: the operator's systemd unit, or pg_ctl from these binaries. */
export type ServerControl = { systemdUnit: string } | { pgBin: string };

export interface RestoredServer {
  pgdata: string;
  control: ServerControl;
  /** libpq settings for connecting to it (the record's port in PGPORT). */
  env: NodeJS.ProcessEnv;
  /** pg_ctl's log (-l), when pg_ctl starts it. */
  logFile?: string;
}

/** pg_ctl's directory: --pg-bin, PGSNAP_PG_BIN, Debian's /usr/lib/postgresql/<PG_VERSION>/bin, or PATH. */
export function findPgBin(
  pgdata: string,
  given: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const major = readFileSync(join(pgdata, 'PG_VERSION'), 'utf8').trim();
  const candidates = [
    given,
    fromEnvironment('pgBin', env),
    `/usr/lib/postgresql/${major}/bin`,
    ...(env.PATH ?? '').split(delimiter).filter(Boolean),
  ].filter((dir): dir is string => dir !== undefined && dir !== '');
  const found = candidates.find((dir) => existsSync(join(dir, 'pg_ctl')));
  if (!found || (given !== undefined && found !== given)) {
    throw new PreconditionError(
      given !== undefined
        ? `--pg-bin ${given} has no pg_ctl; give the directory of PostgreSQL ${major}'s binaries`
        : `no pg_ctl for PostgreSQL ${major} (the data directory's version) in PGSNAP_PG_BIN, ` +
            `/usr/lib/postgresql/${major}/bin or PATH: install postgresql-${major}, or give --pg-bin DIR ` +
            '(or --systemd-unit U to start it with systemd)',
    );
  }
  return found;
}

/** Runs a server binary as the owner of PGDATA: directly when that is us, through runuser as root. */
function asOwner(pgdata: string, file: string, args: string[]) {
  const uid = statSync(pgdata).uid;
  const me = process.getuid?.();
  if (uid === me) return spawnSync(file, args, { encoding: 'utf8', cwd: '/' });
  const name = userName(uid);
  if (me !== 0 || !name) {
    throw new PreconditionError(
      `${pgdata} belongs to uid ${uid}${name ? ` (${name})` : ''}, and PostgreSQL runs as the owner of its data ` +
        'directory: run pgsnap as root or as that user',
    );
  }
  return spawnSync('runuser', ['-u', name, '--', file, ...args], { encoding: 'utf8', cwd: '/' });
}

function check(result: ReturnType<typeof spawnSync>, what: string, hint: string): void {
  if (result.status === 0) return;
  throw new PreconditionError(
    `${what} failed (exit ${result.status ?? result.signal}): ${String(result.stderr || result.stdout).trim()}. ${hint}`,
  );
}

export function startServer(server: RestoredServer): void {
  if ('systemdUnit' in server.control) {
    const unit = server.control.systemdUnit;
    check(
      spawnSync('systemctl', ['start', unit], { encoding: 'utf8' }),
      `systemctl start ${unit}`,
      `See journalctl -u ${unit}; the unit must start PostgreSQL on ${server.pgdata}`,
    );
    return;
  }
  const owner = statSync(server.pgdata);
  makeDirectoryAsOwner(join(server.pgdata, 'log'), owner, 0o700);
  // -W: pgsnap waits itself, for consistency and the target, which can take longer than pg_ctl's -t.
  const pgCtl = join(server.control.pgBin, 'pg_ctl');
  check(
    asOwner(server.pgdata, pgCtl, ['-D', server.pgdata, '-l', server.logFile!, '-W', 'start']),
    `pg_ctl start on ${server.pgdata}`,
    `Its log: ${server.logFile}`,
  );
}

/** Whether a postmaster runs in `pgdata` (not merely a postmaster.pid that came with a snapshot). */
export function postmasterRunsIn(pgdata: string): boolean {
  return postmasterPid(pgdata) !== undefined;
}

/** The postmaster's pid while it runs, from postmaster.pid. */
function postmasterPid(pgdata: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(join(pgdata, 'postmaster.pid'), 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number(text.split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  // A snapshot of a running cluster carries its postmaster.pid: that pid may be alive, running elsewhere.
  // A server's working directory is its data directory.
  try {
    return realpathSync(`/proc/${pid}/cwd`) === realpathSync(pgdata) ? pid : undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // Another user's process, alive: it may be this server, which only root or its owner can tell.
    return code === 'EACCES' || code === 'EPERM' ? pid : undefined;
  }
}

export function serverIsRunning(server: RestoredServer): boolean {
  if ('systemdUnit' in server.control) {
    const state = spawnSync('systemctl', ['is-active', server.control.systemdUnit], { encoding: 'utf8' });
    if (['active', 'activating', 'reloading'].includes(state.stdout.trim())) return true;
  }
  return postmasterPid(server.pgdata) !== undefined;
}

/** What a log says since the server last started: a log file that came with the snapshot holds the source's past. */
function sinceLastStart(text: string): string {
  const at = text.lastIndexOf('starting PostgreSQL');
  return at < 0 ? text : text.slice(text.lastIndexOf('\n', at) + 1);
}

/**
 * The server's log since it was started: pg_ctl's -l file, the newest file of
 * PGDATA/log (logging_collector), or the unit's journal.
 */
export function serverLog(server: RestoredServer): string {
  const parts: string[] = [];
  if (server.logFile && existsSync(server.logFile)) parts.push(readFileSync(server.logFile, 'utf8'));
  for (const dir of ['log', 'pg_log'].map((d) => join(server.pgdata, d))) {
    try {
      const newest = readdirSync(dir)
        .map((name) => join(dir, name))
        .filter((path) => path !== server.logFile && statSync(path).isFile())
        .sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs)
        .at(-1);
      if (newest) parts.push(sinceLastStart(readFileSync(newest, 'utf8')));
    } catch {}
  }
  if ('systemdUnit' in server.control) {
    const journal = spawnSync('journalctl', ['-u', server.control.systemdUnit, '-n', '200', '--no-pager'], {
      encoding: 'utf8',
    });
    if (journal.status === 0) parts.push(sinceLastStart(journal.stdout));
  }
  return parts.join('\n');
}

const targetNotReached = 'recovery ended before configured recovery target was reached';

/**
 * Why a server stopped, in its log's words: the recovery target line, else
 * its first FATAL or PANIC with the DETAIL that follows (which names, say, the
 * setting below the primary's).
 */
export function failureInLog(log: string): string | undefined {
  const lines = log.split('\n');
  let at = lines.findIndex((l) => l.includes(targetNotReached));
  if (at < 0) at = lines.findIndex((l) => /\b(FATAL|PANIC):/.test(l));
  if (at < 0) return undefined;
  // "configuration file … contains errors" follows the line that names the error.
  const before = /contains errors/.test(lines[at]!) ? [lines[at - 1]] : [];
  const after = /\bDETAIL:/.test(lines[at + 1] ?? '') ? [lines[at + 1]] : [];
  return [...before, lines[at], ...after]
    .filter((l): l is string => l !== undefined)
    .map((l) => l.trim())
    .join(' / ');
}

/** Why the server stopped, from its log. */
function stoppedBecause(server: RestoredServer): RecoveryTargetNotReachedError | undefined {
  const line = failureInLog(serverLog(server));
  if (line === undefined) return undefined;
  const target = line.includes(targetNotReached)
    ? 'the archived WAL ends before the recovery target: restore to an earlier target, or check that the ' +
      "WAL up to it reached the repository (the source's archiver)"
    : 'recovery stopped';
  return new RecoveryTargetNotReachedError(
    `the restored server on ${server.pgdata} stopped: ${target}. Its log says: ${line}`,
  );
}

export interface Progress {
  consistentAt?: string;
  targetReachedAt?: string;
  acceptingAt?: string;
  inRecovery: boolean;
  replayLsn?: string;
  lastReplayedCommit?: string;
}

async function state(
  client: Client,
): Promise<{ inRecovery: boolean; replayLsn?: string; lastCommit?: string }> {
  const { rows } = await client.query<{ r: boolean; lsn: string | null; at: Date | null }>(
    'SELECT pg_is_in_recovery() AS r, pg_last_wal_replay_lsn()::text AS lsn, pg_last_xact_replay_timestamp() AS at',
  );
  const row = rows[0]!;
  return {
    inRecovery: row.r,
    ...(row.lsn ? { replayLsn: row.lsn } : {}),
    ...(row.at ? { lastCommit: row.at.toISOString() } : {}),
  };
}

/**
 * Waits until the server is where the restore wants it: consistent (it
 * accepts connections), then promoted (restore, drill: the target reached, or
 * the end of the WAL), or for a standby replayed to the backup's stopLsn.
 * A server that stops on the way ends the wait with the reason from its log.
 */
export async function waitForRecovery(
  server: RestoredServer,
  goal: { mode: RestoreMode; stopLsn?: string },
  options: { timeoutMs: number; progress: (message: string) => void; pollMs?: number },
): Promise<Progress> {
  const deadline = Date.now() + options.timeoutMs;
  // pg_ctl -W returns once the postmaster is forked, before it writes postmaster.pid.
  const startGrace = Date.now() + 30_000;
  let seenRunning = false;
  const progress: Progress = { inRecovery: true };
  let lastError = '';
  for (;;) {
    let client: Client | undefined;
    try {
      client = await connect({ applicationName: 'pgsnap restore', env: server.env });
      const now = await state(client);
      const at = new Date().toISOString();
      if (!progress.consistentAt) {
        progress.consistentAt = at;
        options.progress(
          `the restored server is consistent and accepts connections (replayed to ${now.replayLsn})`,
        );
      }
      Object.assign(progress, {
        inRecovery: now.inRecovery,
        ...(now.replayLsn ? { replayLsn: now.replayLsn } : {}),
        ...(now.lastCommit ? { lastReplayedCommit: now.lastCommit } : {}),
      });
      const reached =
        goal.mode === 'standby'
          ? now.inRecovery &&
            now.replayLsn !== undefined &&
            (!goal.stopLsn || parseLsn(now.replayLsn) >= parseLsn(goal.stopLsn))
          : !now.inRecovery;
      if (reached) {
        progress.targetReachedAt = at;
        progress.acceptingAt = at;
        return progress;
      }
    } catch (error) {
      lastError = (error as Error).message;
    } finally {
      await client?.end().catch(() => {});
    }
    const running = serverIsRunning(server);
    seenRunning ||= running;
    if (!running && (seenRunning || Date.now() > startGrace)) {
      // The postmaster may have just gone: its log has the reason.
      throw (
        stoppedBecause(server) ??
        new RecoveryTargetNotReachedError(
          `the restored server on ${server.pgdata} is not running and its log names no reason` +
            `${lastError ? ` (last connection attempt: ${lastError})` : ''}; see ${server.logFile ?? 'its log'}`,
        )
      );
    }
    if (Date.now() > deadline) {
      throw new TimeoutError(
        `the restored server on ${server.pgdata} did not reach ${goal.mode === 'standby' ? `the backup's stop LSN ${goal.stopLsn}` : 'its recovery target'} ` +
          `within ${Math.round(options.timeoutMs / 1000)} s (replayed to ${progress.replayLsn ?? 'unknown'}` +
          `${lastError ? `; ${lastError}` : ''}). It is still running: watch it, or stop it with pgsnap unmount --stop-server`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 500));
  }
}

/** Stops the server: the unit, or pg_ctl -m fast, then -m immediate when fast has not stopped it within `fastSeconds`. */
export function stopServer(server: RestoredServer, fastSeconds = 60): 'stopped' | 'not running' {
  if ('systemdUnit' in server.control) {
    const unit = server.control.systemdUnit;
    if (!serverIsRunning(server)) return 'not running';
    check(
      spawnSync('systemctl', ['stop', unit], { encoding: 'utf8' }),
      `systemctl stop ${unit}`,
      `See journalctl -u ${unit}`,
    );
    return 'stopped';
  }
  if (postmasterPid(server.pgdata) === undefined) return 'not running';
  const pgCtl = join(server.control.pgBin, 'pg_ctl');
  const fast = asOwner(server.pgdata, pgCtl, [
    '-D',
    server.pgdata,
    '-m',
    'fast',
    '-w',
    '-t',
    String(fastSeconds),
    'stop',
  ]);
  if (fast.status !== 0 && postmasterPid(server.pgdata) !== undefined) {
    check(
      asOwner(server.pgdata, pgCtl, ['-D', server.pgdata, '-m', 'immediate', '-w', 'stop']),
      `pg_ctl stop -m immediate on ${server.pgdata}`,
      'Stop the server by hand (kill the postmaster), then unmount again',
    );
  }
  return 'stopped';
}
