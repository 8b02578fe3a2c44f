/** `pgsnap wal-push %p`: the archive_command. */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { formatDuration } from '#domain/backup/input';
import { messageOf, UsageError } from '#domain/errors';
import { requireWalFileName } from '#domain/wal/file';
import { parse } from '../cli/args.ts';
import { printUsage } from '../cli/usage.ts';
import { createOutput } from '../host/output.ts';
import { open, type RepositoryChoice, requireRepositoryChoice } from '../host/repository.ts';
import { defaultStateRoot, settingsFrom } from '../host/settings.ts';
import { systemIdentifierOf } from '../postgres/pgdata.ts';
import type { ArchiverConfig } from '../wal/archiver.ts';
import { archiverLockName, lockHolder, privateDirectory, spawnDaemon, spoolFull } from '../wal/daemon.ts';
import {
  archiveCommandLine,
  confQuote,
  errorStatusName,
  okStatusName,
  plainArchiveCommandLine,
  statusKey,
  warnIfTooLong,
} from '../wal/shell-lines.ts';

export const walPushUsage = `pgsnap wal-push PATH --repo URL --cluster NAME [--async [--parallel N]] [--json]
pgsnap wal-push --print-command --repo URL --cluster NAME [--async ...] [--pgdata DIR]

The archive_command. Compresses the WAL file at PATH (%p) with zstd, stores
it with its sha256 in the repository, and exits 0 once it is there. A file
already archived with the same content is success; with different content it
is an error that names both checksums, and nothing is overwritten. Needs no
database connection. In postgresql.conf:

  archive_command = 'pgsnap wal-push %p --repo s3://bucket/pg --cluster orders-db'

--async          a resident pusher pushes every ready file in parallel, and
                 the archive_command returns at once, without starting
                 pgsnap, for a file already pushed (see --print-command)
--parallel N     files pushed at the same time by the archiver (default: the
                 number of CPUs, from 2 to 4)
--timeout D      how long wal-push waits for the archiver (default 60s)
--spool-dir DIR  the archiver's status files (default: the state directory)
--pgdata DIR     the data directory (default: the current directory, where
                 PostgreSQL runs archive_command)
--print-command  print the archive_command line for postgresql.conf, every
                 value shell-quoted; with --async, the shell fast path that
                 answers from the pusher's spool and starts pgsnap only when
                 the pusher is not ahead

Exit codes: 0 archived; 1 not archived (PostgreSQL keeps the file and
retries); 2 usage error; 3 the repository belongs to another cluster.`;

const flags = {
  async: { type: 'boolean', default: false },
  parallel: { type: 'string' },
  timeout: { type: 'string' },
  'spool-dir': { type: 'string' },
  pgdata: { type: 'string' },
  'print-command': { type: 'boolean', default: false },
} as const;

type ParsedValues = ReturnType<typeof parse<typeof flags>>['values'];

export async function walPushCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('wal-push', args, flags, true);
  if (values.help) return printUsage(walPushUsage);
  if (values['print-command']) return printCommand(values, positionals);
  if (positionals.length !== 1) {
    throw new UsageError(`pgsnap wal-push: give one file, as archive_command = 'pgsnap wal-push %p ...'`);
  }
  const path = positionals[0]!;
  requireWalFileName(basename(path));
  const choice = requireRepositoryChoice('wal-push', values);
  const pgdata = resolve(values.pgdata ?? process.cwd());
  const out = createOutput(values.json);
  if (!values.async) {
    if (values.parallel !== undefined) throw new UsageError('pgsnap wal-push: --parallel needs --async');
    const { PinCache, pushFile } = await import('../wal/archiver.ts');
    const repository = await open(choice);
    try {
      const result = await pushFile(repository, new PinCache(repository), pgdata, path);
      if (result.status === 'already-present') {
        out.progress(
          `${result.name} is already in ${repository.url} with the same content (sha256 ${result.sha256})`,
        );
      }
      if (out.json) out.result({ ...result }, []);
      return 0;
    } finally {
      repository.close();
    }
  }

  const parallel = parseParallel(values.parallel);
  const { walPushTimeoutMs: timeoutMs, stateDir } = settingsFrom({
    ...(values.timeout !== undefined ? { timeout: values.timeout } : {}),
  });
  return pushAsync({
    name: basename(path),
    path,
    pgdata,
    choice,
    parallel,
    timeoutMs,
    spoolRoot: values['spool-dir'] ?? stateDir,
  });
}

/**
 * Pushes at once, by default: one per CPU, at least 2 and at most 4. Each
 * push compresses a segment on a core the database also needs: more pushes
 * than cores take CPU from the database's backends without pushing faster.
 * (On this project's 2-core machines, under bench/wal-archive's bulk load, the
 * archiver's largest backlog to the local S3 server was 4, 4, 5, 7, 4, 5 with
 * 2 pushes and 6, 7, 6, 2, 8 with 4: a median of 4.5 against 6, in much noise.)
 */
export function defaultParallel(): number {
  return Math.min(4, Math.max(2, availableParallelism()));
}

/** --parallel, or undefined for the default (decided where the pusher runs). */
function parseParallel(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const parallel = Number(value);
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 64) {
    throw new UsageError('pgsnap wal-push: --parallel must be a whole number from 1 to 64');
  }
  return parallel;
}

function printCommand(values: ParsedValues, positionals: string[]): number {
  if (positionals.length > 0) throw new UsageError('pgsnap wal-push --print-command takes no file');
  const choice = requireRepositoryChoice('wal-push', values);
  let line: string;
  if (values.async) {
    const pgdata = resolve(values.pgdata ?? process.cwd());
    const spoolRoot = resolve(values['spool-dir'] ?? defaultStateRoot());
    let spool: string;
    try {
      spool = join(spoolRoot, choice.cluster, `wal-push-${systemIdentifierOf(pgdata)}`);
    } catch (error) {
      throw new UsageError(
        `--print-command --async: ${pgdata} is not a data directory (${messageOf(error)}); ` +
          "give --pgdata DIR: the spool is named after the cluster's system identifier",
      );
    }
    line = archiveCommandLine({
      spool,
      spoolRoot,
      url: choice.url,
      cluster: choice.cluster,
      parallel: parseParallel(values.parallel),
    });
  } else {
    if (values.parallel !== undefined) throw new UsageError('pgsnap wal-push: --parallel needs --async');
    line = plainArchiveCommandLine({ url: choice.url, cluster: choice.cluster });
  }
  warnIfTooLong(line, 'archive_command');
  if (values.json) process.stdout.write(`${JSON.stringify({ archiveCommand: line })}\n`);
  else process.stdout.write(`archive_command = ${confQuote(line)}\n`);
  return 0;
}

/**
 * The spool is per cluster and per system identifier: segment names repeat
 * between clusters, and a status file of another cluster must never vouch for
 * one of ours.
 */
/**
 * Threads for the pusher's libuv pool. Each push compresses in that pool, and
 * so do the file reads of every other push: with the default 4 threads and 4
 * pushes compressing, reads queued behind compression (a 16 MiB segment took
 * 130 ms to read, median, under bench/wal-archive's bulk load). Two more than
 * the pushes keeps room for the rest.
 */
export function archiverThreads(parallel: number): number {
  return Math.max(4, parallel + 2);
}

export function archiveSpool(spoolRoot: string, cluster: string, pgdata: string): string {
  return privateDirectory(join(spoolRoot, cluster, `wal-push-${systemIdentifierOf(pgdata)}`));
}

async function pushAsync(options: {
  name: string;
  path: string;
  pgdata: string;
  choice: RepositoryChoice;
  parallel: number | undefined;
  timeoutMs: number;
  spoolRoot: string;
}): Promise<number> {
  const spool = archiveSpool(options.spoolRoot, options.choice.cluster, options.pgdata);
  // The same status the shell fast path looks for: the .ok of this very file, not of another of its name.
  const ok = join(spool, okStatusName(options.name, statusKey(options.path)));
  const failed = join(spool, errorStatusName(options.name));
  const config: ArchiverConfig = {
    pgdata: options.pgdata,
    spool,
    repository: options.choice,
    parallel: options.parallel ?? defaultParallel(),
    idleExitMs: 10_000,
  };
  const started = Date.now();
  let checkedArchiver = 0;
  // PostgreSQL asks again after a failure: the pusher's last answer is spent, and it should try now rather
  // than when its back-off says.
  if (existsSync(failed)) {
    rmSync(failed, { force: true });
    const pusher = lockHolder(join(spool, archiverLockName));
    if (pusher !== undefined) process.kill(pusher, 'SIGUSR1');
  }
  for (;;) {
    // The .ok stays: PostgreSQL may ask again for the same file (a crash before it marked it done), and
    // the pusher removes it once the file is no longer ready.
    if (existsSync(ok)) return 0;
    if (existsSync(failed)) {
      let message = '';
      try {
        message = readFileSync(failed, 'utf8').trim();
      } catch {
        continue; // replaced just now: look again
      }
      rmSync(failed, { force: true });
      process.stderr.write(`pgsnap: ${options.name} not archived yet: ${message}\n`);
      return 1;
    }
    if (Date.now() - checkedArchiver > 1_000) {
      checkedArchiver = Date.now();
      // Neither the pusher's .ok nor its .error can be written there: say so now, so that PostgreSQL counts
      // a failure and retries, instead of waiting for an answer that cannot come.
      const full = spoolFull(spool);
      if (full) {
        process.stderr.write(`pgsnap: ${options.name} not archived: ${full}\n`);
        return 1;
      }
      if (lockHolder(join(spool, archiverLockName)) === undefined) {
        spawnDaemon('__wal-archiver', config, {
          cwd: options.pgdata,
          log: join(spool, 'archiver.log'),
          env: { UV_THREADPOOL_SIZE: String(archiverThreads(config.parallel)) },
        });
      }
    }
    if (Date.now() - started > options.timeoutMs) {
      process.stderr.write(
        `pgsnap: ${options.name} not archived within ${formatDuration(options.timeoutMs)}; the archiver ` +
          `(see ${join(spool, 'archiver.log')}) is still working on it, and PostgreSQL will ask again\n`,
      );
      return 1;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}
