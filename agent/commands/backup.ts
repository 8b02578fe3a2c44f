/** `pgsnap backup start`: start a backup in AWS (an execution of the state machine) and follow it. */
import { SFNClient } from '@aws-sdk/client-sfn';
import { type ExecutionOutcome, followExecution, startBackupExecution } from '#domain/backup/execution';
import { UsageError } from '#domain/errors';
import { validateBackupId } from '#domain/ids';
import { parse } from '../cli/args.ts';
import { table } from '../cli/output.ts';
import { progressOutput } from '../cli/terminal-progress.ts';
import { printUsage } from '../cli/usage.ts';
import { awsClientConfig } from '../host/aws-timeouts.ts';
import { createOutput } from '../host/output.ts';
import { settingsFrom } from '../host/settings.ts';

export const backupUsage = `pgsnap backup start --cluster NAME [--label L] [--fast] [--backup-id ID]
                    [--state-machine ARN] [--wait] [--json]

Starts a backup of the cluster in AWS: an execution of the pgsnap state
machine (--state-machine, or PGSNAP_STATE_MACHINE_ARN) named after a new
backupId; starting the same --backup-id again starts nothing new. With --wait,
prints each step as the backup takes it and exits 0 only once the backup is
completed (1 if it failed, 3 if another backup of the cluster was running).
AWS credentials and region come from the usual AWS_* settings.`;

const flags = {
  label: { type: 'string' },
  fast: { type: 'boolean' },
  'backup-id': { type: 'string' },
  'state-machine': { type: 'string' },
  wait: { type: 'boolean', default: false },
} as const;

function outcomeLines(outcome: ExecutionOutcome): Array<[string, unknown]> {
  return [
    ['status', outcome.status],
    ['error', outcome.error],
    ['cause', outcome.cause],
  ];
}

export async function backupCommand(args: string[]): Promise<number> {
  const [subcommand, ...rest] = args;
  if (subcommand === '--help' || subcommand === '-h') return printUsage(backupUsage);
  if (subcommand !== 'start') {
    throw new UsageError(
      `pgsnap backup: unknown subcommand ${JSON.stringify(subcommand ?? '')}; use pgsnap backup start --cluster NAME ` +
        '(the catalog is pgsnap backups list)',
    );
  }
  const { values } = parse('backup start', rest, flags);
  if (values.help) return printUsage(backupUsage);
  const out = progressOutput(createOutput(values.json));
  const settings = settingsFrom({
    ...(values.cluster !== undefined ? { cluster: values.cluster } : {}),
    ...(values['state-machine'] !== undefined ? { 'state-machine': values['state-machine'] } : {}),
  });
  const { cluster, backupStateMachine: stateMachineArn } = settings;
  if (!cluster) throw new UsageError('pgsnap backup start: give --cluster NAME (or PGSNAP_CLUSTER)');
  if (!stateMachineArn) {
    throw new UsageError(
      'pgsnap backup start: give --state-machine ARN or set PGSNAP_STATE_MACHINE_ARN ' +
        '(the pgsnap stack outputs it; e.g. arn:aws:states:eu-west-1:111122223333:stateMachine:pgsnap-prod-backup)',
    );
  }
  const backupId = values['backup-id'] ? validateBackupId(values['backup-id']) : undefined;

  const sfn = new SFNClient(awsClientConfig());
  try {
    const started = await startBackupExecution(sfn, {
      stateMachineArn,
      input: {
        cluster,
        ...(values.label !== undefined ? { label: values.label } : {}),
        ...(values.fast !== undefined ? { fast: values.fast } : {}),
        trigger: 'cli',
      },
      ...(backupId ? { backupId } : {}),
    });
    if (!values.wait) {
      out.result(
        { ...started },
        table([
          ['backupId', started.backupId],
          ['execution', started.executionArn],
        ]),
      );
      return 0;
    }
    out.progress(`backup ${started.backupId} of ${cluster} started (${started.executionArn})`);
    const outcome = await followExecution(sfn, started.executionArn, { progress: out.progress });
    const running = runningBackupOf(outcome.output);
    out.result(
      { ...started, ...outcome, ...(running ? { runningBackupId: running } : {}) },
      table([
        ['backupId', started.backupId],
        ...outcomeLines(outcome),
        ['skipped', running ? `backup ${running} of ${cluster} is running; this one did nothing` : undefined],
      ]),
    );
    if (outcome.status !== 'SUCCEEDED') return 1;
    return running ? 3 : 0;
  } finally {
    out.stop();
    sfn.destroy();
  }
}

/**
 * The backup the host was already running when this execution's begin was
 * refused (BackupInProgressError, caught into `$.running` and ended in "Leave
 * it to the backup already running"): its backupId, as the host's message names it.
 */
function runningBackupOf(output: unknown): string | undefined {
  const cause = (output as { running?: { Cause?: string } } | undefined)?.running?.Cause;
  if (cause === undefined) return undefined;
  return /\d{8}T\d{6}Z-[0-9a-f]{6}/.exec(cause)?.[0] ?? 'unknown';
}
