/**
 * Turns a copied or snapshotted data directory into one that PostgreSQL will
 * recover correctly (docs, "Recovering Using a Continuous Archive Backup";
 * research notes §3).
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, realpathSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { PreconditionError } from '#domain/errors';
import {
  emptyDirectory,
  makeDirectoryAsOwner,
  type Owner,
  ownedDirectory,
  ownedDirectoryOnPlainPath,
  readOwnedFile,
  removeTree,
  writeOwnedFile,
} from '../postgres/owned-paths.ts';

/** Files that must not survive into a restored data directory. */
const staleFiles = [
  'postmaster.pid',
  'postmaster.opts',
  'standby.signal',
  'recovery.signal',
  'backup_manifest',
];

/** Directories whose contents belong to the running server that was copied, not to the backup. */
const runtimeDirs = [
  'pg_wal',
  'pg_replslot',
  'pg_dynshmem',
  'pg_notify',
  'pg_serial',
  'pg_snapshots',
  'pg_stat_tmp',
  'pg_subtrans',
];

/** The settings that each name a recovery target: at most one may be set (PostgreSQL 12+). */
const recoveryTargets = [
  'recovery_target',
  'recovery_target_lsn',
  'recovery_target_name',
  'recovery_target_time',
  'recovery_target_xid',
];

const restoreMarker = '# pgsnap restore';

export interface RecoveryTarget {
  kind: 'time' | 'lsn' | 'name' | 'immediate';
  value?: string;
}

export interface PrepareOptions {
  pgdata: string;
  backupLabel: string;
  tablespaceMap?: string;
  /** Checked against the artifacts before they are written, when given. */
  expectedSha256?: { backupLabel?: string; tablespaceMap?: string };
  restoreCommand: string;
  target?: RecoveryTarget;
  targetAction?: 'promote' | 'pause' | 'shutdown';
  /** A restored copy must not push WAL into production's archive unless asked to. */
  keepArchiving?: boolean;
  standby?: { primaryConninfo: string };
  /** New locations for tablespaces, by OID: recovery recreates pg_tblspc links from tablespace_map. */
  tablespaces?: Record<string, string>;
  /** Where pg_wal goes (an empty directory): replaces the copied pg_wal, or the link it was. */
  walDir?: string;
}

function processesWorkingIn(): Array<{ pid: number; cwd: string }> {
  const found: Array<{ pid: number; cwd: string }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      found.push({ pid: Number(entry), cwd: realpathSync(`/proc/${entry}/cwd`) });
    } catch {}
  }
  return found;
}

/**
 * Refuses to prepare a data directory that a running server uses, or whose
 * pg_wal link leads into a running server's WAL: emptying it would destroy
 * that server's WAL. (A server's working directory is its data directory.)
 */
export function refuseLiveDirectories(pgdata: string, walDir?: string): void {
  const servers = processesWorkingIn();
  const home = realpathSync(pgdata);
  const here = servers.find((p) => p.cwd === home);
  if (here)
    throw new PreconditionError(
      `a server (pid ${here.pid}) is running in ${pgdata}; stop it before restoring into it`,
    );
  const wal = join(pgdata, 'pg_wal');
  if (walDir || !lstatSync(wal, { throwIfNoEntry: false })?.isSymbolicLink()) return;
  const target = realpathSync(wal);
  for (const server of servers) {
    let theirs: string;
    try {
      theirs = realpathSync(join(server.cwd, 'pg_wal'));
    } catch {
      continue;
    }
    if (theirs === target) {
      throw new PreconditionError(
        `${wal} links to ${target}, the WAL of the server (pid ${server.pid}) running in ${server.cwd}; ` +
          'restoring would empty it. Give the restored cluster a WAL directory of its own (--waldir DIR)',
      );
    }
  }
}

/*
 * tablespace_map: one `<oid> <path>` line per tablespace, with \n, \r and \\ in
 * the path escaped by a backslash (research notes §1). Remapping rewrites only the
 * paths asked for; everything else stays byte for byte.
 */
function escapeMapPath(path: string): string {
  return path.replace(/[\\\n\r]/g, (char) => `\\${char}`);
}

export function remapTablespaces(map: string, locations: Record<string, string>): string {
  const seen = new Set<string>();
  const lines = map.split('\n').map((line) => {
    const space = line.indexOf(' ');
    const oid = line.slice(0, space);
    const location = locations[oid];
    if (space < 0 || location === undefined) return line;
    seen.add(oid);
    return `${oid} ${escapeMapPath(location)}`;
  });
  const unknown = Object.keys(locations).filter((oid) => !seen.has(oid));
  if (unknown.length > 0) {
    throw new Error(
      `--tablespace ${unknown.join(', ')}: no such tablespace OID in this backup's tablespace_map`,
    );
  }
  return lines.join('\n');
}

export function sha256(content: string): string {
  return createHash('sha256').update(Buffer.from(content, 'utf8')).digest('hex');
}

/**
 * recovery_target_time is checked when the configuration is read, before the
 * time zone abbreviations are loaded: PostgreSQL 15 refuses `…T00:00:00Z`
 * ("invalid value for parameter") and takes `…T00:00:00+00:00`.
 */
function targetValue(target: RecoveryTarget): string {
  return target.kind === 'time' ? target.value!.replace(/Z$/i, '+00:00') : target.value!;
}

/** A postgresql.conf string: the GUC parser reads backslash escapes as well as doubled quotes. */
function quote(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
}

/**
 * Empties one of runtimeDirs. A link there (pg_stat_tmp on a tmpfs, or one
 * planted) is replaced by an empty directory, not followed; pg_wal may be a
 * link to the server's WAL volume, emptied only when that directory belongs
 * to the data directory's owner too.
 */
function emptyRuntimeDirectory(pgdata: string, name: string, owner: Owner, walDir?: string): void {
  const path = join(pgdata, name);
  const found = lstatSync(path, { throwIfNoEntry: false });
  if (!found) return;
  if (name === 'pg_wal' && walDir) {
    // The link made above: the WAL directory the operator gave (a restored WAL volume, or a new one).
    emptyDirectory(walDir, owner);
    return;
  }
  if (found.isSymbolicLink() && name === 'pg_wal') {
    const target = realpathSync(path);
    const stat = lstatSync(target);
    if (!stat.isDirectory() || stat.uid !== owner.uid) {
      throw new PreconditionError(
        `${path} links to ${target}, which is not a directory of the data directory's owner (uid ` +
          `${owner.uid}; it belongs to uid ${stat.uid}); refusing to empty it. Point pg_wal at the restored ` +
          'WAL volume, or give the restored cluster a WAL directory of its own (--waldir DIR)',
      );
    }
    emptyDirectory(target, owner);
    return;
  }
  if (found.isDirectory()) {
    emptyDirectory(path, owner);
    return;
  }
  rmSync(path, { force: true });
  ownedDirectory(path, owner, 0o700);
}

export function prepareDataDirectory(options: PrepareOptions): void {
  const { pgdata } = options;
  if (!existsSync(join(pgdata, 'PG_VERSION'))) {
    throw new Error(`${pgdata} is not a PostgreSQL data directory (no PG_VERSION)`);
  }
  for (const [name, content, expected] of [
    ['backup_label', options.backupLabel, options.expectedSha256?.backupLabel],
    ['tablespace_map', options.tablespaceMap ?? '', options.expectedSha256?.tablespaceMap],
  ] as const) {
    if (expected && sha256(content) !== expected) {
      throw new Error(
        `${name} does not match its recorded sha256 ${expected} (got ${sha256(content)}); refusing to restore`,
      );
    }
  }

  refuseLiveDirectories(pgdata, options.walDir);
  // Whoever runs the restore (often root), what it writes must belong to the server's user, as PGDATA does.
  // That user controls everything inside PGDATA, links included (research notes §1: a superuser runs
  // programs as it): nothing there is followed, written through or handed over (owned-paths.ts).
  const owner = statSync(pgdata);
  if (options.walDir) {
    removeTree(join(pgdata, 'pg_wal'), owner);
    // Root hands it to the server's user: never through a link on the way (a restored WAL volume may hold one).
    ownedDirectoryOnPlainPath(options.walDir, owner, 0o700);
    symlinkSync(options.walDir, join(pgdata, 'pg_wal'));
  }
  // unlink(2): a link among them goes, its target stays.
  for (const file of staleFiles) rmSync(join(pgdata, file), { force: true });
  // A leftover exclusive backup (≤14) may have left its own label in the copy: always replace both files.
  rmSync(join(pgdata, 'backup_label'), { force: true });
  rmSync(join(pgdata, 'tablespace_map'), { force: true });
  for (const dir of runtimeDirs) emptyRuntimeDirectory(pgdata, dir, owner, options.walDir);
  makeDirectoryAsOwner(join(pgdata, 'pg_wal', 'archive_status'), owner, 0o700);

  writeOwnedFile(join(pgdata, 'backup_label'), options.backupLabel, 0o600, owner);
  if (options.tablespaceMap) {
    const map = options.tablespaces
      ? remapTablespaces(options.tablespaceMap, options.tablespaces)
      : options.tablespaceMap;
    writeOwnedFile(join(pgdata, 'tablespace_map'), map, 0o600, owner);
  }

  const settings: Array<[string, string]> = [['restore_command', quote(options.restoreCommand)]];
  if (!options.keepArchiving) settings.push(['archive_mode', 'off']);
  // Pinned, so that recovery never follows a timeline some other restore pushed into the archive.
  settings.push(['recovery_target_timeline', quote('current')]);
  const targetName =
    options.target &&
    (options.target.kind === 'immediate' ? 'recovery_target' : `recovery_target_${options.target.kind}`);
  // Every other target emptied: one the operator left in postgresql.conf would otherwise stay in force, or
  // make PostgreSQL refuse to start ("multiple recovery targets specified"). Only a setting's last value counts.
  for (const name of recoveryTargets) {
    if (name !== targetName) settings.push([name, quote('')]);
  }
  if (options.target && targetName) {
    settings.push([
      targetName,
      quote(options.target.kind === 'immediate' ? 'immediate' : targetValue(options.target)),
    ]);
    settings.push(['recovery_target_action', options.targetAction ?? 'promote']);
  }
  // A snapshot of a standby carries its primary_conninfo; a restored copy must not follow that primary.
  settings.push(['primary_conninfo', quote(options.standby?.primaryConninfo ?? '')]);
  // postgresql.auto.conf is read last, so these win over whatever the copied postgresql.conf says. An earlier
  // restore's block is replaced, not followed by a second one: its target must not outlive it.
  const autoConf = join(pgdata, 'postgresql.auto.conf');
  const replaced = new Set(settings.map(([key]) => key));
  const kept = readOwnedFile(autoConf)
    .split('\n')
    .filter((line) => {
      const key = /^\s*([\w.]+)\s*=?/.exec(line)?.[1]?.toLowerCase();
      return (
        line.trim() !== restoreMarker && !(key && (replaced.has(key) || key.startsWith('recovery_target')))
      );
    })
    .join('\n')
    .replace(/\n*$/, '\n');
  const lines = settings.map(([key, value]) => `${key} = ${value}`).join('\n');
  writeOwnedFile(autoConf, `${kept === '\n' ? '' : kept}${restoreMarker}\n${lines}\n`, 0o600, owner);
  writeOwnedFile(join(pgdata, options.standby ? 'standby.signal' : 'recovery.signal'), '', 0o600, owner);
}
