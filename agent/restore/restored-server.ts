/**
 * The restored server on a restore's target host: started by a systemd unit
 * or by pg_ctl as the owner of PGDATA, watched until recovery is where the
 * restore wants it, and stopped again for a drill's teardown. PostgreSQL
 * refuses to run as root, so as root pg_ctl runs through runuser.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  PreconditionError,
  RecoveryTargetNotReachedError,
  TimeoutError,
  UnsafeRestorePathError,
} from '#domain/errors';
import type { RestoreMode } from '#domain/repository/restore-record';
import { parseLsn } from '#domain/wal/lsn';
import { fromEnvironment } from '../host/settings.ts';
import { type Client, connect } from '../postgres/client.ts';
import { makeDirectoryAsOwner, readPlainFile, refuseLinksOnPath } from '../postgres/owned-paths.ts';
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

/** PG_VERSION as PostgreSQL writes it: a major version (`16`), or `9.6` before 10. */
const pgVersionPattern = /^(\d{1,3}(?:\.\d{1,3})?)\n?$/;

/**
 * The data directory's major version, from PG_VERSION read without following
 * a link (on the way or at the file) and held to a version number. Its
 * content is never quoted: a restored PG_VERSION may be a link to a file
 * only root can read, and the error lands in the restore record.
 */
export function pgVersionOf(pgdata: string): string {
  const path = join(pgdata, 'PG_VERSION');
  refuseLinksOnPath(path, 'PG_VERSION');
  const text = readPlainFile(path, 16).toString('latin1');
  const match = pgVersionPattern.exec(text);
  if (!match) {
    throw new UnsafeRestorePathError(
      `${path} does not hold a PostgreSQL version number (it should read like 16 or 9.6): the data ` +
        'directory is not one pgsnap will start; check the volumes the restore mounted',
    );
  }
  return match[1]!;
}

/**
 * pg_ctl's directory: --pg-bin, PGSNAP_PG_BIN, or the system's
 * /usr/lib/postgresql/<major>/bin, <major> a checked version number. Never a
 * directory chosen by what was restored (nor PATH): root runs what is there.
 */
export function findPgBin(
  pgdata: string,
  given: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const major = pgVersionOf(pgdata);
  const candidates = [given, fromEnvironment('pgBin', env), `/usr/lib/postgresql/${major}/bin`].filter(
    (dir): dir is string => dir !== undefined && dir !== '',
  );
  const found = candidates.find((dir) => existsSync(join(dir, 'pg_ctl')));
  if (!found || (given !== undefined && found !== given)) {
    throw new PreconditionError(
      given !== undefined
        ? `--pg-bin ${given} has no pg_ctl; give the directory of PostgreSQL ${major}'s binaries`
        : `no pg_ctl for PostgreSQL ${major} (the data directory's version) in PGSNAP_PG_BIN or ` +
            `/usr/lib/postgresql/${major}/bin: install postgresql-${major}, or give --pg-bin DIR ` +
            '(or --systemd-unit U to start it with systemd)',
    );
  }
  return found;
}

/** The user a restored data directory must belong to when pgsnap runs as root. */
const serverUserName = 'postgres';

/**
 * Refuses a data directory pgsnap would start as an unexpected user: one
 * that belongs to root (PostgreSQL refuses root, and root would run pg_ctl
 * on it itself), or, as root, to anyone but the `postgres` user (a restored
 * volume chooses its own owner: it may name a user the server must never
 * run as); not as root, to anyone but us.
 */
export function requireServerOwner(pgdata: string): { uid: number; gid: number; name: string } {
  refuseLinksOnPath(pgdata, 'the data directory');
  const me = process.getuid?.();
  // As root no link was on the way (refused above); not root, the demo's links at mount points are ours.
  const stat = me === 0 ? lstatSync(pgdata) : statSync(pgdata);
  if (!stat.isDirectory()) {
    throw new UnsafeRestorePathError(`the data directory ${pgdata} is not a directory`);
  }
  const name = userName(stat.uid);
  const expected = me === 0 ? userUid(serverUserName) : me;
  if (stat.uid === 0 || stat.uid !== expected || !name) {
    throw new UnsafeRestorePathError(
      `the data directory ${pgdata} belongs to uid ${stat.uid}${name ? ` (${name})` : ''}, not to ` +
        `${me === 0 ? `the ${serverUserName} user` : 'the user running pgsnap'}: pgsnap starts a restored ` +
        'server only as that user, and never as root. Check the restored volume (its owner comes from the source)',
    );
  }
  return { uid: stat.uid, gid: stat.gid, name };
}

function userUid(name: string): number | undefined {
  const result = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  return result.status === 0 ? Number(result.stdout.trim()) : undefined;
}

/**
 * The restored server's environment: an allow-list (PATH, the locale, the
 * time zone, PGDATA and the port), not the caller's. pgsnap runs as root
 * with pgsnap.env sourced (PGPASSWORD, AWS_* settings): a postmaster, and
 * every program its superuser runs, would read them in /proc/<pid>/environ.
 */
export function serverEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(env).filter(
      ([name, value]) =>
        value !== undefined &&
        (['PATH', 'LANG', 'LANGUAGE', 'TZ', 'PGDATA', 'PGPORT'].includes(name) || name.startsWith('LC_')),
    ),
  );
}

/** Runs a server binary as the owner of PGDATA, with the server's environment: directly when that is us, through runuser as root. */
function asOwner(pgdata: string, file: string, args: string[], env: NodeJS.ProcessEnv) {
  const owner = requireServerOwner(pgdata);
  const options = { encoding: 'utf8' as const, cwd: '/', env: serverEnvironment(env) };
  if (owner.uid === process.getuid?.()) return spawnSync(file, args, options);
  return spawnSync('runuser', ['-u', owner.name, '--', file, ...args], options);
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
  const owner = requireServerOwner(server.pgdata);
  makeDirectoryAsOwner(join(server.pgdata, 'log'), owner, 0o700);
  // -W: pgsnap waits itself, for consistency and the target, which can take longer than pg_ctl's -t.
  const pgCtl = join(server.control.pgBin, 'pg_ctl');
  check(
    asOwner(server.pgdata, pgCtl, ['-D', server.pgdata, '-l', server.logFile!, '-W', 'start'], server.env),
    `pg_ctl start on ${server.pgdata}`,
    `Its log: ${server.logFile}`,
  );
}

/** The postmaster's pid while it runs, from postmaster.pid. */
function postmasterPid(pgdata: string): number | undefined {
  let text: string;
  try {
    text = readPlainFile(join(pgdata, 'postmaster.pid'), 4096).toString('utf8');
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
  // The logs are in the restored PGDATA: read as regular files only, never through a link (lstat, O_NOFOLLOW).
  const read = (path: string) => readPlainFile(path, logBytes).toString('utf8');
  if (server.logFile && existsSync(server.logFile)) {
    try {
      parts.push(read(server.logFile));
    } catch {}
  }
  for (const dir of ['log', 'pg_log'].map((d) => join(server.pgdata, d))) {
    try {
      if (!lstatSync(dir).isDirectory()) continue;
      const newest = readdirSync(dir)
        .map((name) => join(dir, name))
        .filter((path) => path !== server.logFile && lstatSync(path).isFile())
        .sort((a, b) => lstatSync(a).mtimeMs - lstatSync(b).mtimeMs)
        .at(-1);
      if (newest) parts.push(sinceLastStart(read(newest)));
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

/** How much of a log is read: enough for the lines since the last start. */
const logBytes = 16 * 1024 * 1024;

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
  const fast = asOwner(
    server.pgdata,
    pgCtl,
    ['-D', server.pgdata, '-m', 'fast', '-w', '-t', String(fastSeconds), 'stop'],
    server.env,
  );
  if (fast.status !== 0 && postmasterPid(server.pgdata) !== undefined) {
    check(
      asOwner(server.pgdata, pgCtl, ['-D', server.pgdata, '-m', 'immediate', '-w', 'stop'], server.env),
      `pg_ctl stop -m immediate on ${server.pgdata}`,
      'Stop the server by hand (kill the postmaster), then unmount again',
    );
  }
  return 'stopped';
}
