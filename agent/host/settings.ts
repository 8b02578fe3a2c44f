import { homedir } from 'node:os';
import { join } from 'node:path';
import { formatDuration, parseDuration } from '#domain/backup/input';
import { UsageError } from '#domain/errors';
import { validateClusterName } from '#domain/ids';

/** How a setting's text is read. */
export type SettingType = 'name' | 'text' | 'path' | 'url' | 'arn' | 'duration' | 'count';

export interface SettingDescriptor {
  /** The environment variable, when the setting has one. */
  env?: string;
  /** The flag (without `--`), when a command takes one. */
  flag?: string;
  type: SettingType;
  /** The default as an operator reads it; absent when the setting is unset by default. */
  default?: string;
  /** Which commands read it, when not every one. */
  commands?: string;
  description: string;
}

/**
 * The longest maximum duration: Node.js keeps a timer's delay in a signed
 * 32-bit millisecond count, and a longer one is set to 1 ms (with only a
 * TimeoutOverflowWarning), which would expire the backup at once. About 24.8
 * days, far past any snapshot.
 */
export const maxDurationLimitMs = 2 ** 31 - 1;

export const settingDescriptors = {
  config: {
    env: 'PGSNAP_CONFIG',
    type: 'path',
    default: '/etc/pgsnap/pgsnap.env, when it is there and readable',
    description:
      'the settings file: KEY=value lines of PGSNAP_* (and PG*, AWS_*) variables, below the environment and ' +
      'flags; refused unless it and its directory belong to root or to the user and no one else may write them',
  },
  cluster: {
    env: 'PGSNAP_CLUSTER',
    flag: 'cluster',
    type: 'name',
    description: "the cluster's name in the repository and in AWS (e.g. orders-db)",
  },
  repo: {
    env: 'PGSNAP_REPO',
    flag: 'repo',
    type: 'url',
    description: 'where WAL and backups are kept: s3://bucket/prefix or file:///dir',
  },
  stateDir: {
    env: 'PGSNAP_STATE_DIR',
    flag: 'state-dir',
    type: 'path',
    default: '/run/pgsnap for root, else $XDG_RUNTIME_DIR/pgsnap, else ~/.pgsnap',
    description: "the agent's local state: holder sockets, session records, wal-push's spool",
  },
  taskToken: {
    env: 'PGSNAP_TASK_TOKEN',
    flag: 'task-token',
    type: 'text',
    commands: 'begin, end, abort, restore, mount, unmount',
    description:
      'the Step Functions task token to answer (also --task-token-file); removed from the environment once read',
  },
  heartbeat: {
    flag: 'heartbeat-seconds',
    type: 'count',
    default: 'a heartbeat every 60s',
    commands: 'begin, end, abort, restore, mount, unmount',
    description:
      "the Task state's HeartbeatSeconds, whole seconds; the agent heartbeats three times within it",
  },
  pgBin: {
    env: 'PGSNAP_PG_BIN',
    flag: 'pg-bin',
    type: 'path',
    default: '/usr/lib/postgresql/<version>/bin, then PATH',
    commands: 'restore',
    description: "the directory of pg_ctl for the restored data directory's PostgreSQL version",
  },
  systemdUnit: {
    env: 'PGSNAP_SYSTEMD_UNIT',
    flag: 'systemd-unit',
    type: 'name',
    commands: 'restore, unmount',
    description: 'the systemd unit that runs the restored server (the SSM document passes none)',
  },
  credentialsUrl: {
    env: 'PGSNAP_CREDENTIALS_URL',
    type: 'url',
    description:
      "on a host found by tags: the stack's credential vendor (output CredentialsUrl); the repository is then " +
      "used with the credentials it vends for this instance's cluster, signed for with the instance's own. " +
      'Unset: the AWS SDK default chain',
  },
  localVolumes: {
    env: 'PGSNAP_LOCAL_VOLUMES',
    type: 'path',
    description: 'a JSON file of local volumes standing in for EBS (the one-machine harness)',
  },
  backupStateMachine: {
    env: 'PGSNAP_STATE_MACHINE_ARN',
    flag: 'state-machine',
    type: 'arn',
    commands: 'backup start',
    description: "the backup state machine's ARN (a pgsnap stack output)",
  },
  restoreStateMachine: {
    env: 'PGSNAP_RESTORE_STATE_MACHINE_ARN',
    flag: 'state-machine',
    type: 'arn',
    commands: 'restore start',
    description: "the restore state machine's ARN (a pgsnap stack output)",
  },
  maxDuration: {
    flag: 'max-duration',
    type: 'duration',
    default: '1h',
    commands: 'begin, run',
    description: `how long a backup may be held before it is aborted (at most ${formatDuration(maxDurationLimitMs)})`,
  },
  archiveTimeout: {
    flag: 'archive-timeout',
    type: 'duration',
    default: '10m',
    commands: 'end, run',
    description: "how long end waits for the backup's last WAL file to be archived",
  },
  walPushTimeout: {
    flag: 'timeout',
    type: 'duration',
    default: '60s',
    commands: 'wal-push',
    description: 'how long wal-push waits for the archiver',
  },
  checkTimeout: {
    flag: 'timeout',
    type: 'duration',
    default: '60s',
    commands: 'check',
    description: 'how long check waits for the switched WAL segment to reach the repository',
  },
  metricsInterval: {
    flag: 'metrics-interval',
    type: 'duration',
    default: '1m',
    commands: 'agent',
    description: 'how often the agent samples archive health (1s to 10m)',
  },
  recoveryTimeout: {
    flag: 'recovery-timeout',
    type: 'duration',
    default: '6h',
    commands: 'restore',
    description: 'how long restore waits for recovery; bare seconds (21600) are still accepted',
  },
  awsConnectTimeout: {
    env: 'PGSNAP_AWS_CONNECT_TIMEOUT',
    type: 'count',
    default: '5 (seconds)',
    description:
      'seconds every AWS call (S3 repository, Step Functions, CloudWatch, EC2, STS) may take to connect',
  },
  awsRequestTimeout: {
    env: 'PGSNAP_AWS_REQUEST_TIMEOUT',
    type: 'count',
    default: '30 (seconds)',
    description:
      'seconds every AWS call may wait for its answer; a call past it fails as RepositoryTimeoutError',
  },
  doctorCheckTimeout: {
    env: 'PGSNAP_DOCTOR_CHECK_TIMEOUT',
    type: 'count',
    default: '60 (seconds)',
    commands: 'doctor',
    description: "each doctor check's time limit in seconds; one past it fails and the next checks still run",
  },
  prefetch: {
    flag: 'prefetch',
    type: 'count',
    default: '0',
    commands: 'wal-fetch, restore',
    description: 'WAL files fetched ahead of recovery (0: none)',
  },
} as const satisfies Record<string, SettingDescriptor>;

export type SettingName = keyof typeof settingDescriptors;

/** The environment variable the SSM document passes the task token in. */
export const taskTokenVariable = settingDescriptors.taskToken.env;
/** The file PGSNAP_LOCAL_VOLUMES names. */
export const localVolumesVariable = settingDescriptors.localVolumes.env;

export const defaultMaxDurationMs = 3_600_000;
export const defaultArchiveTimeoutMs = 600_000;
export const defaultWalPushTimeoutMs = 60_000;
export const defaultCheckTimeoutMs = 60_000;
/** One minute: CloudWatch's standard resolution, and what the "agent silent" alarm expects. */
export const defaultMetricsIntervalMs = 60_000;
export const defaultRecoveryTimeoutMs = 21_600_000;
/** Without --heartbeat-seconds (a task token given by hand), a heartbeat every minute. */
export const defaultHeartbeatMs = 60_000;

/** The flags that settings come from, as node:util parseArgs gives them. */
export interface SettingFlags {
  cluster?: string;
  repo?: string;
  'state-dir'?: string;
  'pg-bin'?: string;
  'systemd-unit'?: string;
  'state-machine'?: string;
  'max-duration'?: string;
  'archive-timeout'?: string;
  timeout?: string;
  'metrics-interval'?: string;
  'recovery-timeout'?: string;
  prefetch?: string;
}

/** The agent's settings, flags and environment applied. */
export interface Settings {
  cluster: string | undefined;
  repo: string | undefined;
  stateDir: string;
  pgBin: string | undefined;
  systemdUnit: string | undefined;
  localVolumes: string | undefined;
  backupStateMachine: string | undefined;
  restoreStateMachine: string | undefined;
  maxDurationMs: number;
  archiveTimeoutMs: number;
  walPushTimeoutMs: number;
  metricsIntervalMs: number;
  recoveryTimeoutMs: number;
  prefetch: number;
}

/** A setting's environment variable alone, for code that has no flags to apply (a variable set to '' is unset). */
export function fromEnvironment(
  name: 'pgBin' | 'localVolumes' | 'systemdUnit' | 'credentialsUrl',
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  return env[settingDescriptors[name].env] || undefined;
}

/**
 * A setting in seconds (decimals allowed) from its environment variable alone,
 * in milliseconds; undefined when unset. Read when used, not by settingsFrom:
 * a bad AWS time limit must not stop a command that never calls AWS.
 */
export function secondsFromEnvironment(
  name: 'awsConnectTimeout' | 'awsRequestTimeout' | 'doctorCheckTimeout',
  env: NodeJS.ProcessEnv = process.env,
): number | undefined {
  const variable = settingDescriptors[name].env;
  const text = env[variable];
  if (text === undefined || text === '') return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    throw new UsageError(
      `${variable}=${JSON.stringify(text)} is not a number of seconds above 0, e.g. ${variable}=30`,
    );
  }
  return Math.round(value * 1000);
}

/** How many WAL files wal-fetch keeps downloaded ahead of recovery: 0 (none) to 64. */
function prefetchCount(text: string | undefined): number {
  const ahead = Number(text ?? 0);
  if (!Number.isInteger(ahead) || ahead < 0 || ahead > 64) {
    throw new UsageError('--prefetch must be a whole number of segments from 0 to 64');
  }
  return ahead;
}

/** `flags`, then the environment, onto the settings; a bad value is a usage error naming its flag. */
export function settingsFrom(flags: SettingFlags = {}, env: NodeJS.ProcessEnv = process.env): Settings {
  const cluster = flags.cluster ?? env.PGSNAP_CLUSTER;
  return {
    cluster: cluster === undefined ? undefined : validateClusterName(cluster),
    repo: flags.repo ?? env.PGSNAP_REPO,
    stateDir: flags['state-dir'] ?? defaultStateRoot(env),
    pgBin: flags['pg-bin'] ?? env.PGSNAP_PG_BIN,
    systemdUnit: flags['systemd-unit'] ?? env.PGSNAP_SYSTEMD_UNIT,
    localVolumes: fromEnvironment('localVolumes', env),
    backupStateMachine: flags['state-machine'] ?? env.PGSNAP_STATE_MACHINE_ARN,
    restoreStateMachine: flags['state-machine'] ?? env.PGSNAP_RESTORE_STATE_MACHINE_ARN,
    maxDurationMs: flags['max-duration'] ? maxDuration(flags['max-duration']) : defaultMaxDurationMs,
    archiveTimeoutMs: flags['archive-timeout']
      ? parseDuration(flags['archive-timeout'], '--archive-timeout')
      : defaultArchiveTimeoutMs,
    walPushTimeoutMs: flags.timeout ? parseDuration(flags.timeout, '--timeout') : defaultWalPushTimeoutMs,
    metricsIntervalMs: flags['metrics-interval']
      ? parseDuration(flags['metrics-interval'], '--metrics-interval')
      : defaultMetricsIntervalMs,
    recoveryTimeoutMs:
      flags['recovery-timeout'] !== undefined
        ? durationOrSeconds(flags['recovery-timeout'], '--recovery-timeout')
        : defaultRecoveryTimeoutMs,
    prefetch: prefetchCount(flags.prefetch),
  };
}

/**
 * A duration in the one syntax (`90s`, `10m`, `1h30m`), or, for a setting
 * that took whole seconds before durations had units, a bare number of seconds.
 */
export function durationOrSeconds(text: string, flag: string): number {
  if (/^[0-9]+$/.test(text)) {
    if (!/^[1-9][0-9]{0,7}$/.test(text)) {
      throw new UsageError(
        `${flag} ${text}: give a duration such as 6h or 90m, or a whole number of seconds`,
      );
    }
    return Number(text) * 1000;
  }
  return parseDuration(text, flag);
}

function maxDuration(text: string): number {
  const millis = parseDuration(text, '--max-duration');
  if (millis > maxDurationLimitMs) {
    throw new UsageError(
      `--max-duration ${text} is longer than pgsnap can time (at most ${formatDuration(maxDurationLimitMs)}, ` +
        'about 24 days); a backup is held for the minutes its snapshots take: give, for example, 1h or 6h',
    );
  }
  return millis;
}

/**
 * PGSNAP_STATE_DIR; /run/pgsnap for root; $XDG_RUNTIME_DIR/pgsnap (the
 * user's own, mode 0700 by the XDG spec); otherwise ~/.pgsnap — for
 * `postgres` its home, /var/lib/postgresql or /var/lib/pgsql, above the data
 * directories. Never a shared /tmp: a name there such as /tmp/pgsnap-<uid>
 * can be made first by any local user (privateDirectory refuses one that is
 * not ours and private, wherever it is).
 */
export function defaultStateRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PGSNAP_STATE_DIR) return env.PGSNAP_STATE_DIR;
  if (process.getuid?.() === 0) return '/run/pgsnap';
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'pgsnap');
  return join(env.HOME || homedir(), '.pgsnap');
}

/** The settings as a markdown table, for docs/settings.md. */
export function settingsTable(): string {
  const cell = (text: string | undefined) => (text ? text.replaceAll('|', '\\|') : '');
  const code = (text: string | undefined) => (text ? `\`${text}\`` : '');
  const rows = Object.entries(settingDescriptors).map(([name, d]: [string, SettingDescriptor]) =>
    [
      name,
      code(d.env),
      code(d.flag && `--${d.flag}`),
      d.type,
      cell(d.default),
      cell(d.commands ?? 'all'),
      cell(d.description),
    ].join(' | '),
  );
  return [
    '| setting | variable | flag | type | default | commands | what it is |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((row) => `| ${row} |`),
  ].join('\n');
}
