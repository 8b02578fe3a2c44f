/** `pgsnap wal-fetch %f %p`: the restore_command. */
import { resolve } from 'node:path';
import { messageOf, stopRecoveryExitCode, UsageError } from '#domain/errors';
import { requireWalFileName } from '#domain/wal/file';
import { parse } from '../cli/args.ts';
import { printUsage } from '../cli/usage.ts';
import { requireRepositoryChoice } from '../host/repository.ts';
import { settingsFrom } from '../host/settings.ts';
import { fetchWalFile } from '../wal/fetch.ts';
import { prefetcherConfig } from '../wal/prefetcher-config.ts';
import {
  confQuote,
  defaultPrefetchSpool,
  reportToShell,
  walFetchLine,
  warnIfTooLong,
} from '../wal/shell-lines.ts';
import { stayAsPrefetcher } from '../wal/stay-as-prefetcher.ts';

export const walFetchUsage = `pgsnap wal-fetch FILE PATH --repo URL --cluster NAME [--prefetch N]
pgsnap wal-fetch --print-command --repo URL --cluster NAME [--prefetch N] [--spool-dir DIR | --pgdata DIR]

The restore_command. Fetches FILE (%f) from the repository, checks its
sha256, and writes it to PATH (%p). In postgresql.conf of a restored server:

  restore_command = 'pgsnap wal-fetch %f %p --repo s3://bucket/pg --cluster orders-db'

--prefetch N     keep the next N segments downloaded and verified ahead of
                 recovery by a helper that exits once recovery stops asking
--spool-dir DIR  the directory where prefetched segments wait, for this
                 restore only (default: pg_wal/pgsnap-prefetch, on the file
                 system of pg_wal, so that taking a segment is a rename)
--stay           (used by that line) report on descriptor 3 once the file is
                 in place, and go on as the prefetcher
--report         (used by that line) say on descriptor 3 \`fetched\` or
                 \`missing\`, so that the line can tell pgsnap's "not there"
                 from Node.js failing to start
--print-command  print the restore_command line for postgresql.conf, every
                 value shell-quoted; with --prefetch, the shell fast path that
                 moves prefetched segments into place and starts pgsnap only
                 for the others (give --pgdata DIR for the default spool)

When replay is faster than starting pgsnap (tens of milliseconds a segment),
use the line that --print-command --prefetch 8 prints: the shell moves
prefetched segments into place, and pgsnap starts only for the others.

Exit codes: 0 fetched; 1 not in the repository (quietly: PostgreSQL asks for
files that do not exist, such as the next timeline's history file); ${stopRecoveryExitCode} the
repository is unreachable or the file is damaged, which makes PostgreSQL stop
recovery instead of ending it early: fix the cause and start the server again.`;

const flags = {
  prefetch: { type: 'string' },
  'spool-dir': { type: 'string' },
  pgdata: { type: 'string' },
  'print-command': { type: 'boolean', default: false },
  stay: { type: 'boolean', default: false },
  report: { type: 'boolean', default: false },
} as const;

export async function walFetchCommand(args: string[]): Promise<number> {
  try {
    return await walFetch(args);
  } catch (error) {
    process.stderr.write(`pgsnap wal-fetch: ${messageOf(error)}\n`);
    return stopRecoveryExitCode;
  }
}

async function walFetch(args: string[]): Promise<number> {
  const { values, positionals } = parse('wal-fetch', args, flags, true);
  if (values.help) return printUsage(walFetchUsage);
  const ahead = settingsFrom(values).prefetch;
  if (values['print-command']) {
    if (positionals.length > 0) throw new UsageError('--print-command takes no file');
    return printRestoreCommand(values, ahead);
  }
  if (positionals.length !== 2) {
    throw new UsageError(`give the file and the path, as restore_command = 'pgsnap wal-fetch %f %p ...'`);
  }
  const [name, path] = positionals as [string, string];
  const kind = requireWalFileName(name);
  const choice = requireRepositoryChoice('wal-fetch', values);

  if (values.stay) {
    if (ahead === 0) throw new UsageError('--stay needs --prefetch N');
    return stayAsPrefetcher(name, kind, path, prefetcherConfig(choice, ahead, values['spool-dir'], kind));
  }
  const status = await fetchWalFile(name, kind, path, choice, ahead, values['spool-dir']);
  // Only after an answer: on a failure the exception leaves without one, and the line stops recovery.
  if (values.report) reportToShell(status === 0 ? 'fetched' : 'missing');
  return status;
}

/** `--print-command`: the restore_command line for postgresql.conf. */
function printRestoreCommand(
  values: { 'spool-dir'?: string; pgdata?: string; json?: boolean; repo?: string; cluster?: string },
  ahead: number,
): number {
  const choice = requireRepositoryChoice('wal-fetch', values);
  const spool = () => resolve(values['spool-dir'] ?? defaultPrefetchSpool(resolve(values.pgdata ?? '.')));
  const line = walFetchLine(choice.url, choice.cluster, ahead > 0 ? { ahead, spool: spool() } : undefined);
  warnIfTooLong(line, 'restore_command');
  process.stdout.write(
    values.json ? `${JSON.stringify({ restoreCommand: line })}\n` : `restore_command = ${confQuote(line)}\n`,
  );
  return 0;
}
