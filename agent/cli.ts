/** The `pgsnap` command line: dispatch, and the one place where errors become exit codes. */
import { exitCodeFor, messageOf, UsageError } from '#domain/errors';
import { abortCommand } from './commands/abort.ts';
import { backupCommand } from './commands/backup.ts';
import { backupsCommand } from './commands/backups.ts';
import { beginCommand } from './commands/begin.ts';
import { demoCommand } from './commands/demo.ts';
import { discoverCommand } from './commands/discover.ts';
import { drillCommand } from './commands/drill.ts';
import { endCommand } from './commands/end.ts';
import { preflightCommand } from './commands/preflight.ts';
import { restoreCommand } from './commands/restore.ts';
import { retentionCommand } from './commands/retention.ts';
import { runCommand } from './commands/run.ts';
import { statusCommand } from './commands/status.ts';
import { walFetchCommand } from './commands/wal-fetch.ts';
import { walPushCommand } from './commands/wal-push.ts';
import { type HolderConfig, runHolder } from './holder.ts';
import { type ArchiverConfig, runArchiver } from './wal-archiver.ts';
import { type PrefetcherConfig, runPrefetcher } from './wal-prefetcher.ts';

const commands: Record<string, { run: (args: string[]) => Promise<number>; summary: string }> = {
  preflight: { run: preflightCommand, summary: 'check that a backup can be taken here' },
  begin: { run: beginCommand, summary: 'start a backup held by a background process' },
  end: { run: endCommand, summary: 'end the backup and hand over backup_label, tablespace_map, history' },
  abort: { run: abortCommand, summary: 'end the backup without artifacts' },
  status: { run: statusCommand, summary: 'is a backup in progress here, and how did the last one end' },
  run: { run: runCommand, summary: 'begin, run a snapshot command, end (abort if it fails)' },
  restore: {
    run: restoreCommand,
    summary: 'prepare a restored data directory: artifacts, stale files, recovery target',
  },
  drill: { run: drillCommand, summary: 'restore drill of a backup with a local provider, data checked' },
  retention: { run: retentionCommand, summary: 'delete backups and WAL a retention policy no longer keeps' },
  'wal-push': { run: walPushCommand, summary: 'archive_command: store a WAL file in the repository' },
  'wal-fetch': { run: walFetchCommand, summary: 'restore_command: fetch a WAL file from the repository' },
  backups: { run: backupsCommand, summary: 'the catalog: backups list, backups show ID' },
  discover: { run: discoverCommand, summary: 'which volumes (EBS ids, devices, mounts) hold the cluster' },
  backup: { run: backupCommand, summary: 'backup start --cluster X [--wait]: a backup in AWS, followed' },
  demo: { run: demoCommand, summary: 'a backup under load and a restore drill on this machine (npm start)' },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  return [
    'usage: pgsnap <command> [options]',
    '',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Connection settings come from PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD / PGPASSFILE.',
    'Every command takes --json (one JSON document on stdout) and --help.',
    'Exit codes: 0 ok, 1 failure, 2 usage error, 3 a precondition is not met.',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === '__holder') return runHolder(JSON.parse(args[0]!) as HolderConfig);
  if (name === '__wal-archiver') return runArchiver(JSON.parse(args[0]!) as ArchiverConfig);
  if (name === '__wal-prefetcher') return runPrefetcher(JSON.parse(args[0]!) as PrefetcherConfig);
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (!command) throw new UsageError(`pgsnap: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
  return command.run(args);
}

const argv = process.argv.slice(2);
main(argv).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const name = error instanceof Error ? error.name : 'Error';
    process.stderr.write(`pgsnap: ${messageOf(error)}\n`);
    const separator = argv.indexOf('--');
    if ((separator < 0 ? argv : argv.slice(0, separator)).includes('--json')) {
      process.stdout.write(`${JSON.stringify({ error: { name, message: messageOf(error) } }, null, 2)}\n`);
    }
    process.exitCode = exitCodeFor(error);
  },
);
