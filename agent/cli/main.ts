/** The `pgsnap` command line: dispatch, and the one place where errors become exit codes. */
import { existsSync } from 'node:fs';
import { exitCodeFor, messageOf, PreconditionError, stopRecoveryExitCode, UsageError } from '#domain/errors';
import { backgroundConfig } from '../host/background-config.ts';
import { singleExecutable } from '../host/self.ts';
import { loadSettingsFile } from '../host/settings-file.ts';
import { quietKnownWarnings } from '../host/warnings.ts';

type Run = (args: string[]) => Promise<number>;

/**
 * Each command is loaded when it runs: archive_command and restore_command
 * start pgsnap once per WAL file, and should not pay for the AWS SDK or pg
 * they never use (the bundle is split per command, agent/build.mjs).
 */
const commands: Record<string, { load: () => Promise<Run>; summary: string }> = {
  preflight: {
    load: () => import('../commands/preflight.ts').then((m) => m.preflightCommand),
    summary: 'check that a backup can be taken here',
  },
  begin: {
    load: () => import('../commands/begin.ts').then((m) => m.beginCommand),
    summary: 'start a backup held by the agent service, or by a background process',
  },
  end: {
    load: () => import('../commands/end.ts').then((m) => m.endCommand),
    summary: 'end the backup and hand over backup_label, tablespace_map, history',
  },
  abort: {
    load: () => import('../commands/abort.ts').then((m) => m.abortCommand),
    summary: 'end the backup without artifacts',
  },
  status: {
    load: () => import('../commands/status.ts').then((m) => m.statusCommand),
    summary: 'is a backup in progress here, and how did the last one end',
  },
  run: {
    load: () => import('../commands/run.ts').then((m) => m.runCommand),
    summary: 'begin, run a snapshot command, end (abort if it fails)',
  },
  agent: {
    load: () => import('../commands/agent.ts').then((m) => m.agentCommand),
    summary: 'the resident agent service: holds backup sessions for begin (a systemd service)',
  },
  restore: {
    load: () => import('../commands/restore-prepare.ts').then((m) => m.restorePrepareCommand),
    summary: 'prepare a restored data directory; --restore-id: the whole restore here; start: one in AWS',
  },
  mount: {
    load: () => import('../commands/mount.ts').then((m) => m.mountCommand),
    summary: "on a restore's target host: mount its volumes at their recorded places",
  },
  unmount: {
    load: () => import('../commands/unmount.ts').then((m) => m.unmountCommand),
    summary: 'take away what mount placed for a restore (--stop-server stops its server first)',
  },
  drill: {
    load: () => import('../commands/drill.ts').then((m) => m.drillCommand),
    summary: 'restore drill of a backup with a local provider, data checked',
  },
  retention: {
    load: () => import('../commands/retention.ts').then((m) => m.retentionCommand),
    summary: 'delete backups and WAL a retention policy no longer keeps',
  },
  'wal-push': {
    load: () => import('../commands/wal-push.ts').then((m) => m.walPushCommand),
    summary: 'archive_command: store a WAL file in the repository',
  },
  'wal-fetch': {
    load: () => import('../commands/wal-fetch.ts').then((m) => m.walFetchCommand),
    summary: 'restore_command: fetch a WAL file from the repository',
  },
  backups: {
    load: () => import('../commands/backups.ts').then((m) => m.backupsCommand),
    summary: 'the catalog: backups list, backups show ID, with the restorable window',
  },
  check: {
    load: () => import('../commands/check.ts').then((m) => m.checkCommand),
    summary: 'force a WAL switch and wait for that segment in the repository (archiving works end to end)',
  },
  restores: {
    load: () => import('../commands/restores.ts').then((m) => m.restoresCommand),
    summary: 'the restore and drill records: restores list, restores show ID',
  },
  discover: {
    load: () => import('../commands/discover.ts').then((m) => m.discoverCommand),
    summary: 'which volumes (EBS ids, devices, mounts) hold the cluster',
  },
  doctor: {
    load: () => import('../commands/doctor.ts').then((m) => m.doctorCommand),
    summary: 'every check that a backup and a restore from this host will work, with what to do',
  },
  backup: {
    load: () => import('../commands/backup.ts').then((m) => m.backupCommand),
    summary: 'backup start --cluster X [--wait]: a backup in AWS, followed',
  },
  demo: {
    load: loadDemo,
    summary: 'a backup under load and a restore drill on this machine (npm start)',
  },
};

/**
 * The demo is the local harness (local/demo.ts), not the agent: the agent imports none of local/. It is
 * built as a bundle of its own beside this one (agent/build.mjs) and loaded by path, in a checkout only;
 * the host install leaves it out.
 */
async function loadDemo(): Promise<Run> {
  if (singleExecutable()) {
    throw new PreconditionError(
      'pgsnap demo runs from a project checkout (npm install && npm start), not from the single executable',
    );
  }
  const bundle = new URL('./demo.mjs', import.meta.url);
  if (!existsSync(bundle)) {
    throw new PreconditionError(
      'pgsnap demo runs from a project checkout, not from an installed agent: npm install && npm start',
    );
  }
  return ((await import(bundle.href)) as { demoCommand: Run }).demoCommand;
}

/** Whether `restore`'s arguments ask for the whole restore here (--restore-id), before any `--`. */
function givesRestoreId(args: string[]): boolean {
  const separator = args.indexOf('--');
  return (separator < 0 ? args : args.slice(0, separator)).some(
    (arg) => arg === '--restore-id' || arg.startsWith('--restore-id='),
  );
}

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  return [
    'usage: pgsnap <command> [options]',
    '',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Connection settings come from PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD / PGPASSFILE.',
    'Settings (PGSNAP_REPO, PGSNAP_CLUSTER, ...) also come from /etc/pgsnap/pgsnap.env or the file PGSNAP_CONFIG names.',
    'Every command takes --json (one JSON document on stdout) and --help; pgsnap --version says which build runs.',
    'Exit codes: 0 ok, 1 failure, 2 usage error, 3 a precondition is not met.',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === '__holder') {
    const { runHolder, sessionConfigSchema } = await import('../session/holder.ts');
    return runHolder(backgroundConfig(name, sessionConfigSchema, args[0]));
  }
  if (name === '__wal-archiver') {
    const { runArchiver, archiverConfigSchema } = await import('../wal/archiver.ts');
    return runArchiver(backgroundConfig(name, archiverConfigSchema, args[0]));
  }
  if (name === '__wal-prefetcher') {
    const { runPrefetcher, prefetcherConfigSchema } = await import('../wal/prefetcher.ts');
    return runPrefetcher(backgroundConfig(name, prefetcherConfigSchema, args[0]));
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write(`${(await import('./version.ts')).versionText()}\n`);
    return 0;
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name === undefined ? 2 : 0;
  }
  // Every command, archive_command and restore_command too, below the environment and the flags.
  loadSettingsFile();
  // `restore start` starts a restore in AWS; `restore --restore-id` runs one here; `restore` alone prepares one.
  if (name === 'restore' && args[0] === 'start') {
    return (await import('../commands/restore-start.ts')).restoreStartCommand(args.slice(1));
  }
  if (name === 'restore' && givesRestoreId(args)) {
    return (await import('../commands/restore-host.ts')).restoreHostCommand(args);
  }
  const command = commands[name];
  if (!command) throw new UsageError(`pgsnap: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
  return (await command.load())(args);
}

quietKnownWarnings();
const argv = process.argv.slice(2);
// The restore_command: any failure, also one before wal-fetch's code is loaded (an install being replaced)
// or outside its own error handling, must stop recovery, not read as "no such file" (exit 1).
const restoreCommand = argv[0] === 'wal-fetch';
if (restoreCommand) {
  process.on('uncaughtException', (error) => {
    process.stderr.write(`pgsnap wal-fetch: ${messageOf(error)}\n`);
    process.exit(stopRecoveryExitCode);
  });
}
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
    process.exitCode = restoreCommand ? stopRecoveryExitCode : exitCodeFor(error);
  },
);
