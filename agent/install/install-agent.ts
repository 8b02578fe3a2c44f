/**
 * `pgsnap agent install`: puts the single executable, the systemd unit of the
 * agent service and the settings file in place on a database host, or says
 * what it would write.
 *
 * The executable is copied beside its destination and renamed over it, so a
 * `pgsnap` started meanwhile (archive_command runs it for every WAL file) runs
 * either the old file or the new one, never a part of one. Processes already
 * running (the agent service, a holder, the pusher, the prefetcher) keep the
 * file they started from: Linux keeps a renamed-over file's inode for them,
 * and a single executable loads nothing else from disk. So an upgrade never
 * touches a held backup session, and install restarts nothing: restarting the
 * agent service aborts the backups it holds (it cannot hand a PostgreSQL
 * connection to its successor), so install says what it holds and leaves the
 * restart to the operator.
 *
 * The settings file is sourced by root (the SSM document, infra/backup/agent-document.ts),
 * which refuses it unless it and its directory belong to root and only root
 * may write them; install creates it so, and never overwrites one that is there.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { PreconditionError, UsageError } from '#domain/errors';
import { agentSocketPath } from '../host/state.ts';
import { request } from '../session/control.ts';

export const unitPath = '/etc/systemd/system/pgsnap-agent.service';
export const settingsPath = '/etc/pgsnap/pgsnap.env';
export const defaultBinPath = '/usr/local/bin/pgsnap';

export interface InstallRequest {
  /** Where the host's file system starts: `/`, or a directory standing for it (tests, image builds). */
  root: string;
  /** The absolute path pgsnap is installed at on the host. */
  bin: string;
  /** The single executable to install there; undefined installs the unit and the settings file only. */
  executable: string | undefined;
  /** The agent service's state directory, asked for the sessions it holds. */
  stateRoot: string;
}

export interface InstalledFile {
  /** The file as written: under --root when one is given (an image being built), so it can be looked at. */
  path: string;
  action: 'written' | 'kept' | 'replaced';
}

export interface InstallReport {
  files: InstalledFile[];
  /** The running agent service, when there is one, and the backups it holds. */
  service?: { pid: number; sessions: Array<{ key: string; backupId: string; label: string }> };
  next: string;
}

/** The unit of the agent service, run as root (its state directory is then /run/pgsnap, as for begin run by SSM). */
export function unitFile(bin: string): string {
  return `# ${unitPath}, written by pgsnap agent install
[Unit]
Description=pgsnap agent service: holds PostgreSQL backup sessions
After=network-online.target postgresql.service

[Service]
ExecStart=${systemdQuote(bin)} agent
EnvironmentFile=-${settingsPath}
Restart=on-failure
RestartSec=2
# Aborting the sessions it holds takes a moment: do not kill it at once.
KillMode=mixed
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
`;
}

/** The settings file as install first writes it: every setting commented out, for the operator to fill in. */
export function settingsFile(): string {
  return `# ${settingsPath}: pgsnap's settings on this host, written by pgsnap agent install.
# The SSM document (as root) and the pgsnap-agent service read it. It and /etc/pgsnap must
# belong to root and be writable by root only, or the document refuses to run.
# Connection settings follow libpq; point PGDATABASE at a database no workload uses.
#PGHOST=/var/run/postgresql
#PGPORT=5432
#PGUSER=postgres
#PGDATABASE=postgres
#PGPASSFILE=/etc/pgsnap/pgpass
#PGSNAP_REPO=s3://bucket/prefix
#PGSNAP_CLUSTER=orders-db
`;
}

/**
 * Creates `path` (never an existing file or a link: `wx`) with `mode` set
 * before a byte is written, so no other user can open it while it is being
 * filled: the umask may only narrow the mode open gives, and fchmod then sets
 * exactly `mode` on the empty file. Returns its descriptor.
 */
export function createWithMode(path: string, mode: number): number {
  const fd = openSync(path, 'wx', mode & 0o700);
  try {
    fchmodSync(fd, mode);
    return fd;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/** Writes `content` (or the bytes of `from`) next to `path` and renames it over `path`, fsyncing both. */
function replaceAtomically(path: string, mode: number, source: { content: string } | { from: string }): void {
  const temporary = join(dirname(path), `.${randomBytes(6).toString('hex')}.pgsnap-install`);
  try {
    const fd = createWithMode(temporary, mode);
    try {
      if ('from' in source) copyInto(fd, source.from);
      else writeSync(fd, source.content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } finally {
    rmSync(temporary, { force: true });
  }
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/** Copies the bytes of `from` into `fd` (copyFileSync would make the file with the source's mode). */
function copyInto(fd: number, from: string): void {
  const input = openSync(from, 'r');
  try {
    const chunk = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = readSync(input, chunk, 0, chunk.length, null);
      if (n === 0) return;
      for (let written = 0; written < n; ) written += writeSync(fd, chunk, written, n - written);
    }
  } finally {
    closeSync(input);
  }
}

/**
 * `value` as one systemd command-line word: double-quoted, with `\` and `"`
 * escaped, and `%` and `$` doubled (systemd expands specifiers and variables
 * in ExecStart, also inside quotes; systemd.service(5), "Command lines").
 */
export function systemdQuote(value: string): string {
  if ([...value].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) {
    throw new UsageError(
      `--bin must not contain control characters (newline, tab): ${JSON.stringify(value)}`,
    );
  }
  return `"${value.replace(/[\\"]/g, '\\$&').replace(/%/g, '%%').replace(/\$/g, '$$$$')}"`;
}

function sameFile(a: string, b: string): boolean {
  const [x, y] = [statSync(a), statSync(b, { throwIfNoEntry: false })];
  return y !== undefined && x.dev === y.dev && x.ino === y.ino;
}

/** Fails unless `path` belongs to root and only root may write it: what the SSM document checks. */
function requireRootOnly(path: string): void {
  const s = statSync(path);
  if (s.uid !== 0 || (s.mode & 0o022) !== 0) {
    throw new PreconditionError(
      `${path} must belong to root and be writable by root only (it is uid ${s.uid}, mode ` +
        `${(s.mode & 0o7777).toString(8)}), or the SSM document refuses to source the settings: ` +
        `chown root: ${path}; chmod go-w ${path}`,
    );
  }
}

export async function installAgent(req: InstallRequest): Promise<InstallReport> {
  if (!isAbsolute(req.bin)) throw new UsageError(`--bin must be an absolute path, not ${req.bin}`);
  if (process.getuid?.() !== 0) {
    throw new PreconditionError(
      'pgsnap agent install writes root-owned files (the unit, /etc/pgsnap): run it as root, or with --print',
    );
  }
  const files: InstalledFile[] = [];
  const place = (path: string, mode: number, source: { content: string } | { from: string }) => {
    const target = join(req.root, path);
    mkdirSync(dirname(target), { recursive: true, mode: 0o755 });
    const existed = statSync(target, { throwIfNoEntry: false }) !== undefined;
    replaceAtomically(target, mode, source);
    files.push({ path: target, action: existed ? 'replaced' : 'written' });
  };
  if (req.executable && sameFile(req.executable, join(req.root, req.bin))) {
    files.push({ path: join(req.root, req.bin), action: 'kept' });
  } else if (req.executable) {
    place(req.bin, 0o755, { from: req.executable });
  }
  place(unitPath, 0o644, { content: unitFile(req.bin) });

  const settingsDir = join(req.root, dirname(settingsPath));
  mkdirSync(settingsDir, { recursive: true, mode: 0o755 });
  requireRootOnly(settingsDir);
  const settings = join(req.root, settingsPath);
  if (statSync(settings, { throwIfNoEntry: false })) {
    requireRootOnly(settings);
    files.push({ path: settings, action: 'kept' });
  } else {
    writeFileSync(settings, settingsFile(), { flag: 'wx', mode: 0o600 });
    files.push({ path: settings, action: 'written' });
  }

  const answer = await request(agentSocketPath(req.stateRoot), { op: 'status' }).catch(() => undefined);
  const service = answer?.ok
    ? (answer.result as { pid: number; sessions: NonNullable<InstallReport['service']>['sessions'] })
    : undefined;
  const next = !service
    ? 'systemctl daemon-reload && systemctl enable --now pgsnap-agent'
    : service.sessions.length > 0
      ? `the agent service (pid ${service.pid}) holds ${service.sessions
          .map((s) => `backup ${s.backupId} of ${s.key}`)
          .join(', ')} and runs the previous executable until it restarts; restarting it aborts those ` +
        'backups, so restart it (systemctl daemon-reload && systemctl restart pgsnap-agent) once pgsnap ' +
        'status shows no backup in progress'
      : `the agent service (pid ${service.pid}) holds no backup: systemctl daemon-reload && systemctl ` +
        'restart pgsnap-agent runs the new executable';
  return { files, ...(service ? { service: { pid: service.pid, sessions: service.sessions } } : {}), next };
}
