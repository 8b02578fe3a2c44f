/**
 * What pgsnap writes into a server's configuration (archive_command,
 * restore_command) is run by the server's user, not by whoever ran pgsnap.
 * Run as root from a place that user cannot reach — a checkout under /root
 * (mode 0700 on Debian), Node.js from nvm under a home directory — the lines
 * are right and still fail, at the server's first WAL file, long after pgsnap
 * returned: "the archiver is failing", or recovery stopped. So pgsnap checks,
 * before it writes the line, that the server's user can run what it names.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PreconditionError } from '#domain/errors';

/** `test -x` (enter a directory, run a file) or `test -r` (read a file). */
type Access = '-x' | '-r';

export interface Blocked {
  path: string;
  access: Access;
}

/** Every directory on the way to `path`, from / down. */
function directoriesTo(path: string): string[] {
  const directories: string[] = [];
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    directories.unshift(dir);
    if (dir === dirname(dir)) return directories;
  }
}

/** The name of the user with this uid, or undefined. */
export function userName(uid: number): string | undefined {
  const result = spawnSync('id', ['-nu', String(uid)], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

/**
 * The first of `checks` the user `uid` fails, checked as that user (through
 * `runuser` when this process is root), so that groups, ACLs and noexec
 * mounts count as they will for the server. Undefined when every check
 * passes, and also when this process can act neither as nor for that user
 * (not root, another uid): then only the server can tell.
 */
export function firstBlocked(uid: number, checks: Blocked[]): Blocked | undefined {
  const script = 'while test $# -gt 1; do test "$1" "$2" || { printf %s "$1:$2"; exit 1; }; shift 2; done';
  const args = ['-c', script, 'sh', ...checks.flatMap(({ access, path }) => [access, path])];
  let result: ReturnType<typeof spawnSync>;
  if (uid === process.getuid?.()) {
    result = spawnSync('sh', args, { encoding: 'utf8', cwd: '/' });
  } else if (process.getuid?.() === 0) {
    const name = userName(uid);
    if (!name) return undefined;
    result = spawnSync('runuser', ['-u', name, '--', 'sh', ...args], { encoding: 'utf8', cwd: '/' });
  } else {
    return undefined;
  }
  if (result.status === 0) return undefined;
  const failed = String(result.stdout);
  const blocked = checks.find(({ access, path }) => `${access}:${path}` === failed);
  // runuser itself failing (no such user, no shell to run) is not a finding about the paths.
  return blocked;
}

/** What running `file` (with `access`) needs: every directory on the way searchable, then the file itself. */
export function pathChecks(file: string, access: Access): Blocked[] {
  const real = existsSync(file) ? realpathSync(file) : file;
  return [...directoriesTo(real).map((path) => ({ path, access: '-x' as const })), { path: real, access }];
}

function describe(path: string): string {
  const result = spawnSync('stat', ['-c', '%A %U:%G', path], { encoding: 'utf8' });
  return result.status === 0 ? ` (${result.stdout.trim()})` : '';
}

/**
 * Refuses, before the server needs it, a pgsnap command line (the single
 * executable, or Node.js and the script, as selfCommand gives them) that the
 * server's user `uid` could not run as `setting`, saying which directory or
 * file stops it and what to do.
 */
export function requireServerCanRun(command: string[], uid: number, setting: string): void {
  const [program, script] = command as [string, string | undefined];
  const user = userName(uid) ?? `uid ${uid}`;
  const agentChecks: Blocked[] = [];
  if (script !== undefined) {
    const chunks = join(dirname(existsSync(script) ? realpathSync(script) : script), 'chunks');
    agentChecks.push(
      ...pathChecks(script, '-r'),
      ...(existsSync(chunks) ? [{ path: chunks, access: '-x' as const }] : []),
    );
  }
  const blocked = firstBlocked(uid, [...pathChecks(program, '-x'), ...agentChecks]);
  if (!blocked) return;
  const what =
    blocked.access === '-x' && blocked.path !== program ? 'enter' : blocked.access === '-x' ? 'run' : 'read';
  const inProgram = pathChecks(program, '-x').some((check) => check.path === blocked.path);
  const letThrough = `let ${user} through (chmod o+${blocked.access === '-x' ? 'x' : 'r'} ${blocked.path})`;
  const fix =
    script === undefined
      ? `install pgsnap where ${user} can run it (install -m 0755 pgsnap-linux-<arch> /usr/local/bin/pgsnap)` +
        `${blocked.path === program ? '' : `, or ${letThrough}`}`
      : inProgram
        ? `Node.js is at ${program}: install Node.js where ${user} can run it (the distribution's nodejs package, ` +
          `or under /opt or /usr/local)${blocked.path === program ? '' : `, or let ${user} through (chmod o+x ${blocked.path})`}`
        : `install the agent where ${user} can reach it (tar -xzf dist/pgsnap-agent.tar.gz -C /usr/local, then run ` +
          `/usr/local/bin/pgsnap), or ${letThrough}`;
  throw new PreconditionError(
    `PostgreSQL runs ${setting} as ${user}, who cannot ${what} ${blocked.path}${describe(blocked.path)}, ` +
      `so pgsnap (${command.join(' ')}) would fail there: ${fix}`,
  );
}
