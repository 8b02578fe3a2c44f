/**
 * `pgsnap restore start`: a restore (or drill, or standby) in AWS, as an
 * execution of the restore state machine, followed with a line per phase.
 */
import { SFNClient } from '@aws-sdk/client-sfn';
import { followExecution } from '#domain/backup/execution';
import { parseDuration } from '#domain/backup/input';
import { UsageError } from '#domain/errors';
import { validateBackupId } from '#domain/ids';
import type { RecoveryTargetRequest, RestoreRecord } from '#domain/repository/restore-record';
import { startRestoreExecution } from '#domain/restore/execution';
import { describeFullSpeed, planInitializationRate } from '#domain/restore/full-speed';
import { backupToRestore, describeTarget, volumesToRestore } from '#domain/restore/plan';
import {
  conninfoHasPassword,
  conninfoPasswordRefused,
  type RestoreRequestInput,
  recoveryTargetTime,
} from '#domain/restore/request';
import { parse } from '../cli/args.ts';
import { table } from '../cli/output.ts';
import { recordLines } from '../cli/restore-lines.ts';
import { printUsage } from '../cli/usage.ts';
import { awsClientConfig } from '../host/aws-timeouts.ts';
import { createOutput } from '../host/output.ts';
import { open, repositoryChoice } from '../host/repository.ts';
import { settingsFrom } from '../host/settings.ts';

export const restoreStartUsage = `pgsnap restore start --cluster NAME [--backup-id ID | --latest]
        [--target-time T | --target-lsn L | --target-name N | --target-immediate]
        (--instance-id I | --launch-template LT --subnet S [--launch-template-version V])
        [--drill | --standby --primary-conninfo C] [--kms-key K]
        [--initialization-rate MIBS | --full-speed-within DURATION] [--initialization-price USD_PER_GIB]
        [--amcheck all|none|DATABASE] [--check-sql Q [--check-expect V] [--check-database D]]
        [--restore-id ID] [--state-machine ARN] [--wait] [--repo URL] [--json]

Restores a backup of the cluster in AWS from its EBS snapshots: an execution
of the pgsnap restore state machine (--state-machine, or
PGSNAP_RESTORE_STATE_MACHINE_ARN) named after a new restoreId. It checks the
backup and the WAL to the target first, makes a volume from each snapshot in
the instance's zone, attaches them, and on the instance mounts them, recovers
to the target, starts PostgreSQL and checks it. --drill launches an instance
from the template and removes everything once checked; restore and --standby
leave the cluster running. --full-speed-within 60m picks the slowest EBS
provisioned initialization rate (100-300 MiB/s) that brings the largest volume
to full speed in time, shows it and what it is billed (GiB initialized, at
--initialization-price when given) before starting, and refuses an objective
300 MiB/s cannot meet. With --wait it prints each phase and exits 0 only if
the restore passed; with --repo (or PGSNAP_REPO) it then prints the restore
record: time to open, time to full speed (EBS's own estimate at a provisioned
rate, measured once the server opened; the model's otherwise), each phase, and
the GiB a provisioned rate bills (priced at --initialization-price). AWS credentials and
region come from the usual AWS_* settings.`;

const flags = {
  'backup-id': { type: 'string' },
  latest: { type: 'boolean' },
  'target-time': { type: 'string' },
  'target-lsn': { type: 'string' },
  'target-name': { type: 'string' },
  'target-immediate': { type: 'boolean' },
  'instance-id': { type: 'string' },
  'launch-template': { type: 'string' },
  'launch-template-version': { type: 'string' },
  subnet: { type: 'string' },
  drill: { type: 'boolean' },
  standby: { type: 'boolean' },
  'primary-conninfo': { type: 'string' },
  'initialization-rate': { type: 'string' },
  'full-speed-within': { type: 'string' },
  'initialization-price': { type: 'string' },
  'kms-key': { type: 'string' },
  amcheck: { type: 'string' },
  'check-sql': { type: 'string' },
  'check-expect': { type: 'string' },
  'check-database': { type: 'string' },
  'restore-id': { type: 'string' },
  'state-machine': { type: 'string' },
  wait: { type: 'boolean', default: false },
} as const;

type Values = { [K in keyof typeof flags]?: (typeof flags)[K]['type'] extends 'boolean' ? boolean : string };

function oneOf(values: Values, names: Array<keyof Values>, what: string): keyof Values | undefined {
  const given = names.filter((name) => values[name] !== undefined && values[name] !== false);
  if (given.length > 1) {
    throw new UsageError(
      `pgsnap restore start: ${given.map((g) => `--${g}`).join(' and ')} conflict; give one ${what}`,
    );
  }
  return given[0];
}

/** The state machine's input from the flags, refusing conflicts with a message that says what to give. */
export function restoreRequestFromFlags(values: Values, cluster: string): RestoreRequestInput {
  oneOf(values, ['backup-id', 'latest'], 'backup');
  const targetFlag = oneOf(
    values,
    ['target-time', 'target-lsn', 'target-name', 'target-immediate'],
    'target',
  );
  const time = targetFlag === 'target-time' ? recoveryTargetTime(values['target-time']!) : undefined;
  if (targetFlag === 'target-time' && time === undefined) {
    throw new UsageError(
      `--target-time ${JSON.stringify(values['target-time'])} is not a time; use ISO 8601 with a zone, e.g. 2026-11-21T14:45:00Z`,
    );
  }
  const target: RecoveryTargetRequest | undefined =
    targetFlag === 'target-time'
      ? { time: time! }
      : targetFlag === 'target-lsn'
        ? { lsn: values['target-lsn']! }
        : targetFlag === 'target-name'
          ? { name: values['target-name']! }
          : targetFlag === 'target-immediate'
            ? { immediate: true }
            : undefined;
  const mode = oneOf(values, ['drill', 'standby'], 'mode');
  if (values['instance-id'] && values['launch-template']) {
    throw new UsageError(
      'pgsnap restore start: --instance-id and --launch-template conflict; restore onto one instance, or launch one',
    );
  }
  if (!values['instance-id'] && !values['launch-template']) {
    throw new UsageError(
      'pgsnap restore start: give --instance-id I (an instance to restore onto) or --launch-template LT --subnet S (one to launch)',
    );
  }
  if (values['launch-template'] && !values.subnet) {
    throw new UsageError(
      'pgsnap restore start: --launch-template needs --subnet S, the subnet the instance is launched in',
    );
  }
  if (mode === 'standby' && !values['primary-conninfo']) {
    throw new UsageError(
      "pgsnap restore start: --standby needs --primary-conninfo 'host=… user=…', how the standby reaches its primary",
    );
  }
  if (values['primary-conninfo'] && conninfoHasPassword(values['primary-conninfo'])) {
    throw new UsageError(`pgsnap restore start: --primary-conninfo: ${conninfoPasswordRefused}`);
  }
  const rate = values['initialization-rate'];
  if (rate !== undefined && !/^[0-9]+$/.test(rate)) {
    throw new UsageError(`--initialization-rate ${JSON.stringify(rate)} is not a number of MiB/s (100-300)`);
  }
  oneOf(values, ['initialization-rate', 'full-speed-within'], 'way to set the initialization rate');
  const within = values['full-speed-within'];
  const fullSpeedMinutes =
    within !== undefined ? parseDuration(within, '--full-speed-within') / 60_000 : undefined;
  const amcheck = values.amcheck;
  return {
    cluster,
    backupId: values['backup-id'] ? validateBackupId(values['backup-id']) : 'latest',
    ...(target ? { target } : {}),
    instance: values['instance-id']
      ? { instanceId: values['instance-id'] }
      : {
          launch: {
            launchTemplate: values['launch-template']!,
            subnetId: values.subnet!,
            ...(values['launch-template-version'] ? { version: values['launch-template-version'] } : {}),
          },
        },
    mode: mode === 'drill' ? 'drill' : mode === 'standby' ? 'standby' : 'restore',
    ...(rate !== undefined ? { initializationRate: Number(rate) } : {}),
    ...(fullSpeedMinutes !== undefined ? { fullSpeedMinutes } : {}),
    ...(values['kms-key'] ? { kmsKeyId: values['kms-key'] } : {}),
    ...(values['primary-conninfo'] ? { primaryConninfo: values['primary-conninfo'] } : {}),
    ...(values['restore-id'] ? { restoreId: values['restore-id'] } : {}),
    checks: {
      amcheck:
        amcheck === undefined || amcheck === 'all' || amcheck === 'none'
          ? (amcheck ?? 'all')
          : { database: amcheck },
      ...(values['check-sql']
        ? {
            sql: {
              query: values['check-sql'],
              ...(values['check-expect'] !== undefined ? { expect: values['check-expect'] } : {}),
              ...(values['check-database'] ? { database: values['check-database'] } : {}),
            },
          }
        : {}),
    },
  };
}

export async function restoreStartCommand(args: string[]): Promise<number> {
  const { values } = parse('restore start', args, flags);
  if (values.help) return printUsage(restoreStartUsage);
  const out = createOutput(values.json);
  const { cluster, restoreStateMachine: stateMachineArn } = settingsFrom({
    ...(values.cluster !== undefined ? { cluster: values.cluster } : {}),
    ...(values['state-machine'] !== undefined ? { 'state-machine': values['state-machine'] } : {}),
  });
  if (cluster === undefined)
    throw new UsageError('pgsnap restore start: give --cluster NAME (or PGSNAP_CLUSTER)');
  if (!stateMachineArn) {
    throw new UsageError(
      'pgsnap restore start: give --state-machine ARN or set PGSNAP_RESTORE_STATE_MACHINE_ARN (the pgsnap ' +
        'stack outputs it; e.g. arn:aws:states:eu-west-1:111122223333:stateMachine:pgsnap-prod-restore)',
    );
  }
  const input = restoreRequestFromFlags(values as Values, cluster);
  const choice = repositoryChoice(values);
  // The price per GiB of a provisioned rate, for the plan shown before starting and the cost after --wait.
  const price = values['initialization-price'];
  if (price !== undefined && !/^[0-9]+(\.[0-9]+)?$/.test(price)) {
    throw new UsageError(`--initialization-price ${JSON.stringify(price)} is not a price in USD per GiB`);
  }
  if (input.fullSpeedMinutes !== undefined) {
    if (!choice) {
      out.progress(
        `full speed within ${input.fullSpeedMinutes} min: the restore state machine picks the rate (give --repo to see it first)`,
      );
    } else {
      // The same choice the first step makes, shown (or refused) before anything starts.
      const repository = await open({ ...choice, cluster });
      try {
        const manifest = await backupToRestore(repository, input.backupId ?? 'latest');
        const sizes = volumesToRestore(manifest).map((v) => v.source.sizeGiB * 2 ** 30);
        const plan = planInitializationRate(sizes, input.fullSpeedMinutes, price ? Number(price) : undefined);
        out.progress(`backup ${manifest.backupId}: ${describeFullSpeed(plan)}`);
      } finally {
        repository.close();
      }
    }
  }
  const sfn = new SFNClient(awsClientConfig());
  try {
    const started = await startRestoreExecution(sfn, { stateMachineArn, input });
    if (!values.wait) {
      out.result(
        { ...started },
        table([
          ['restoreId', started.restoreId],
          ['execution', started.executionArn],
        ]),
      );
      return 0;
    }
    out.progress(
      `restore ${started.restoreId} of ${cluster} (${input.mode}, backup ${input.backupId}, to ${describeTarget(input.target)}) started`,
    );
    const began = Date.now();
    const outcome = await followExecution(sfn, started.executionArn, {
      progress: (state) => out.progress(`[${Math.round((Date.now() - began) / 1000)}s] ${state}`),
    });
    let record: RestoreRecord | undefined;
    if (choice) {
      const repository = await open({ ...choice, cluster });
      try {
        record = await repository.readRestoreRecord(started.restoreId);
      } finally {
        repository.close();
      }
    }
    out.result({ ...started, ...outcome, ...(record ? { record } : {}) }, [
      ...table([
        ['restoreId', started.restoreId],
        ['status', outcome.status],
        ['error', outcome.error],
        ['cause', outcome.cause],
      ]),
      ...(record ? recordLines(record, price !== undefined ? { pricePerGiB: Number(price) } : {}) : []),
    ]);
    return outcome.status === 'SUCCEEDED' ? 0 : 1;
  } finally {
    sfn.destroy();
  }
}
