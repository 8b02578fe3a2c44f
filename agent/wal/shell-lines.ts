/**
 * The archive_command and restore_command lines that keep Node.js out of the
 * common case.
 *
 * PostgreSQL runs archive_command and restore_command once per WAL file, one
 * file at a time, and starting Node.js costs about 100 ms: as much as `cp`'s
 * whole budget for a segment. So the lines are POSIX shell whose first part
 * answers from the spool of the resident helper (the pusher of `wal-push
 * --async`, the prefetcher of `wal-fetch --prefetch`) with builtins, `stat`
 * and `mv` only, and which starts pgsnap only when the helper is not ahead.
 */
import { type BigIntStats, closeSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { stopRecoveryExitCode } from '#domain/errors';
import { selfCommand } from '../host/self.ts';
import { walDirectoryOf } from '../postgres/pgdata.ts';
import { archiverLockName, prefetcherLockName } from './daemon.ts';

/** Quotes a value for a POSIX shell; plain words stay as they are, for lines a person can read. */
export function shellQuote(value: string): string {
  return /^[\w./:=@+,-]+$/.test(value) ? value : `'${value.replaceAll("'", `'"'"'`)}'`;
}

/** Shell: exit as pgsnap answered on descriptor 3 (read into `$r`): 0 `fetched`, 1 `missing`; otherwise go on. */
const answerAsReported = 'case $r in fetched) exit 0;; missing) exit 1;; esac';

/**
 * Shell, after pgsnap gave no answer (its status in `$e`): stop recovery. The
 * status goes to the server log, as Node.js failing to start may say little
 * else.
 */
const noAnswer = ['echo "pgsnap wal-fetch: exit $e" >&2', `exit ${stopRecoveryExitCode}`];

/**
 * PostgreSQL replaces %p, %f and %r in the command and, from version 16,
 * refuses any other `%x`: every literal % is written %%.
 */
function literal(value: string): string {
  return shellQuote(value).replaceAll('%', '%%');
}

/** A value for postgresql.conf: single quotes doubled, and backslashes too (the GUC parser reads escapes). */
export function confQuote(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
}

/** Shell: whether the helper whose pid file `lock` is in the spool `$s` is alive. */
function helperAlive(lock: string): string {
  return `{ read pid < "$s/${lock}"; } 2>/dev/null && kill -0 "$pid" 2>/dev/null`;
}

/**
 * What makes an `.ok` status file speak for one file and no other: its inode,
 * size and modification time to the nanosecond, as `stat -c %i-%s-%.9Y`
 * prints them.
 *
 * A segment name alone is not enough. The pusher pushes ahead of the
 * archiver, so a status may outlive the file it was written for: the pusher or
 * the host dies before PostgreSQL asked, and then the data directory is
 * replaced — pg_rewind, a snapshot restored onto the same host, a copy started
 * as a new primary on the same timeline — and a file of the same name but
 * other content becomes ready. A name-keyed `.ok` would then tell PostgreSQL
 * "archived" for content the repository does not hold. Clearing the spool when
 * the system identifier or the timeline changes would not catch the last case
 * (same identifier, same timeline, same names). A completed WAL file is never
 * written again, so its identity is fixed from `.ready` until PostgreSQL
 * removes or recycles it; a different file of the same name has another inode
 * or was written at another moment, and its status key differs. The key costs
 * the shell one `stat`, about a millisecond.
 */
export function statusKey(path: string): string {
  return statusKeyOf(statSync(path, { bigint: true }));
}

export function statusKeyOf(s: BigIntStats): string {
  const seconds = s.mtimeNs / 1_000_000_000n;
  const nanoseconds = (s.mtimeNs % 1_000_000_000n).toString().padStart(9, '0');
  return `${s.ino}-${s.size}-${seconds}.${nanoseconds}`;
}

export function okStatusName(name: string, key: string): string {
  return `${name}.${key}.ok`;
}

export function errorStatusName(name: string): string {
  return `${name}.error`;
}

/** The marker the prefetcher leaves for a file it found, a moment ago, not to be in the repository. */
export function missingMarkerName(name: string): string {
  return `${name}.missing`;
}

export interface ArchiveCommandOptions {
  /** The pusher's spool for this cluster (archiveSpool). */
  spool: string;
  /** What --spool-dir the slow path is given: the root the spool is found under. */
  spoolRoot: string;
  url: string;
  cluster: string;
  /** Given only when the operator chose it: otherwise the pusher decides on its host. */
  parallel?: number | undefined;
  pgsnap?: string[];
}

/**
 * `archive_command` for `wal-push --async`: when the pusher has already
 * stored this very file, report success. The `.ok` stays where it is: should
 * PostgreSQL ask again for the same file (it crashed before marking it done),
 * the answer is still there, and the pusher removes it once the file is no
 * longer `.ready`. (Removing it here would leave a file the pusher believes
 * pushed with no answer for a second asking.) While the live
 * pusher is on it (the file became ready a moment ago, and PostgreSQL asks at
 * once), wait for it in the shell, polling every 20 ms for at most 5 s: about
 * as long as a push takes, where starting pgsnap would take a Node.js start
 * more. Otherwise — no pusher, an `.error`, or still no answer — start
 * pgsnap, which starts the pusher, waits, and reports an error to PostgreSQL.
 * An `.ok` counts only in a spool owned by the user the line runs as (`test
 * -O`), as in restoreCommandLine: another user's spool could say "archived"
 * for a file the repository never received.
 */
export function archiveCommandLine(options: ArchiveCommandOptions): string {
  const pgsnap = (options.pgsnap ?? selfCommand()).map(literal).join(' ');
  return [
    `s=${literal(options.spool)}`,
    'ok="$s/%f.$(stat -c %%i-%%s-%%.9Y %p 2>/dev/null).ok"',
    'n=0',
    'while :',
    // Only from a spool of ours (test -O), as the restore line: an `.ok` someone else made means nothing.
    'do test -O "$s" && test -f "$ok" && exit 0',
    `test $n -lt 250 && test ! -f "$s/%f.error" && ${helperAlive(archiverLockName)} || break`,
    'n=$((n+1))',
    'sleep 0.02',
    'done',
    [
      `exec ${pgsnap} wal-push %p --async`,
      ...(options.parallel !== undefined ? [`--parallel ${options.parallel}`] : []),
      `--spool-dir ${literal(options.spoolRoot)} --repo ${literal(options.url)} --cluster ${literal(options.cluster)}`,
    ].join(' '),
  ].join('; ');
}

export interface RestoreCommandOptions {
  /** The prefetcher's spool directory, best on the file system of pg_wal so that `mv` is a rename. */
  spool: string;
  url: string;
  cluster: string;
  prefetch: number;
  pgsnap?: string[];
}

/**
 * `restore_command` for `wal-fetch --prefetch`: move a prefetched, verified
 * file into place (or copy the second copy the prefetcher keeps of the last
 * segment of the archive, which PostgreSQL asks for twice); say "not there"
 * for a file the live prefetcher just found missing; otherwise start pgsnap.
 * While the live prefetcher is fetching the very file (recovery caught up with
 * it), wait for it in the shell, polling every 20 ms for at most 5 s, rather
 * than start pgsnap, which would wait for the same fetch a Node.js start later
 * (bench/wal-restore, local S3: two of the three slow-path calls of a run were
 * such waits, 230 and 310 ms each).
 *
 * With no live prefetcher (the first call of a recovery), pgsnap is started
 * with --stay in the background: it reports on descriptor 3, which the shell
 * reads through `$(...)`, and the shell answers PostgreSQL as soon as the file
 * is in place, while pgsnap goes on as the prefetcher. (`$(...)` ends when the
 * descriptor closes, not when the process does.) Any other answer, or none,
 * and pgsnap is run again in the foreground, with --report.
 *
 * The line answers "fetched" or "not there" only when pgsnap said so on
 * descriptor 3; anything else stops recovery (exit 128). Its exit status alone
 * cannot be trusted: Node.js exits 1 when the script is not there (an install
 * moved or half-replaced) and 9 on a bad NODE_OPTIONS, and PostgreSQL reads
 * any status up to 125 as "no such file", past the consistency point as the
 * end of the WAL: it would promote early, dropping the rest.
 *
 * Files are taken only from a spool owned by the user the line runs as
 * (`test -O`): one that someone else made under a shared --spool-dir could
 * hold any file (privateDirectory, which pgsnap applies before it uses one,
 * also wants it mode 0700 on a path no one else can rename).
 *
 * A `.missing` marker is trusted only while the prefetcher that maintains it
 * is alive (`kill -0` on its pid file): it rechecks every second and removes
 * markers when it exits, so an answer is at most about a second old — the same
 * as if PostgreSQL had asked a second earlier. A marker left by a killed
 * prefetcher is ignored, and pgsnap asks the repository itself.
 */
export function restoreCommandLine(options: RestoreCommandOptions): string {
  const pgsnap = (options.pgsnap ?? selfCommand()).map(literal).join(' ');
  return [
    `s=${literal(options.spool)}`,
    'f="$s/%f"',
    // a: whether the prefetcher is alive (used three times: a function keeps the line short).
    `a() { ${helperAlive(prefetcherLockName)}; }`,
    'n=0',
    'while test -f "$f.fetching" && test $n -lt 250 && a',
    'do n=$((n+1))',
    'sleep 0.02',
    'done',
    // Only from a spool of ours (test -O, a builtin): pgsnap makes it 0700 and refuses one it did not make.
    'test -O "$s" && test -f "$f" && mv -f "$f" %p && exit 0',
    'test -O "$s" && test -f "$f.again" && cp "$f.again" %p && exit 0',
    'test -f "$f.missing" && a && exit 1',
    `p() { exec ${pgsnap} wal-fetch %f %p --prefetch ${options.prefetch} --spool-dir "$s" ` +
      `--repo ${literal(options.url)} --cluster ${literal(options.cluster)} "$@"; }`,
    `t() { ${answerAsReported}; }`,
    'a || { r=$(p --stay 3>&1 >&2 &); t; }',
    'r=$(p --report 3>&1 >&2); e=$?; t',
    ...noAnswer,
  ].join('; ');
}

/**
 * The answer the fast path line (restoreCommandLine) reads on descriptor 3: it
 * trusts only this, not the exit status, which Node.js also uses when it
 * cannot start at all. Closing the descriptor ends the shell's `$(...)`.
 */
export function reportToShell(outcome: 'fetched' | 'missing' | 'failed' | 'busy'): void {
  try {
    writeSync(3, `${outcome}\n`);
    closeSync(3);
  } catch {}
}

/**
 * PostgreSQL up to 15 builds the command in a buffer of MAXPGPATH (1024)
 * bytes and silently cuts what does not fit (pgarch.c, xlogarchive.c): a cut
 * line is a shell syntax error at every call. The length with the longest %p
 * and %f, to check against that.
 */
export function expandedLength(line: string): number {
  return line
    .replaceAll('%p', 'pg_wal/000000010000000000000001.00000028.backup')
    .replaceAll('%f', '000000010000000000000001.00000028.backup')
    .replaceAll('%%', '%').length;
}

/** Where PostgreSQL 15 and older cut the command (MAXPGPATH less the terminating zero). */
export const commandLimitBefore16 = 1023;

/** Says so on stderr when PostgreSQL 15 or older would cut the line (see commandLimitBefore16). */
export function warnIfTooLong(line: string, setting: string): void {
  const length = expandedLength(line);
  if (length <= commandLimitBefore16) return;
  process.stderr.write(
    `pgsnap: warning: this ${setting} is ${length} bytes with the longest file names; PostgreSQL 15 and ` +
      `older cut it at ${commandLimitBefore16} bytes, which breaks the shell line. Shorten it: a shorter ` +
      '--spool-dir, pgsnap installed under a shorter path, or the line in a script of its own.\n',
  );
}

/** The plain archive_command: pgsnap for every file. */
export function plainArchiveCommandLine(options: {
  url: string;
  cluster: string;
  pgsnap?: string[];
}): string {
  const pgsnap = (options.pgsnap ?? selfCommand()).map(literal).join(' ');
  return `${pgsnap} wal-push %p --repo ${literal(options.url)} --cluster ${literal(options.cluster)}`;
}

/**
 * The restore_command without prefetch: pgsnap for every file, its answer
 * read as the fast path reads it (see restoreCommandLine), so that Node.js
 * failing to start stops recovery rather than ending it.
 */
export function plainRestoreCommandLine(options: {
  url: string;
  cluster: string;
  pgsnap?: string[];
}): string {
  const pgsnap = (options.pgsnap ?? selfCommand()).map(literal).join(' ');
  return [
    `r=$(${pgsnap} wal-fetch %f %p --report --repo ${literal(options.url)} --cluster ${literal(options.cluster)} 3>&1 >&2)`,
    'e=$?',
    answerAsReported,
    ...noAnswer,
  ].join('; ');
}

/**
 * The restore_command PostgreSQL will run to fetch WAL: this very pgsnap,
 * with the repository in its flags; with prefetch, the shell fast path that
 * moves prefetched segments into place without starting pgsnap.
 */
export function walFetchLine(
  url: string,
  cluster: string,
  prefetch?: { ahead: number; spool: string },
  pgsnap: string[] = selfCommand(),
): string {
  return prefetch
    ? restoreCommandLine({ url, cluster, prefetch: prefetch.ahead, spool: prefetch.spool, pgsnap })
    : plainRestoreCommandLine({ url, cluster, pgsnap });
}

/**
 * Where prefetched files wait by default: pg_wal/pgsnap-prefetch, on the file
 * system of pg_wal wherever pg_wal is, so that the restore_command takes a
 * segment with a rename. PostgreSQL ignores what in pg_wal is not named like
 * WAL, and `pgsnap restore` empties pg_wal.
 */
export function defaultPrefetchSpool(pgdata: string): string {
  return join(walDirectoryOf(pgdata), 'pgsnap-prefetch');
}
