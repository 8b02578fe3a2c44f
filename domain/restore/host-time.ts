/**
 * How long the restore's host step may run: the host's recovery timeout
 * (`pgsnap restore --recovery-timeout`, which the restore document passes)
 * plus what comes after recovery on the host, sized by the backup's data.
 * The step's Step Functions timeout always exceeds the recovery timeout the
 * host was given, so a slow recovery fails on the host, with its reason,
 * before the state machine gives up on a silent host.
 */

/** The agent's default recovery timeout (agent/host/settings.ts, `recoveryTimeout`: 6h). */
export const defaultRecoverySeconds = 6 * 3600;

/**
 * The read rate assumed for the checks after recovery (pg_amcheck
 * --heapallindexed reads every block once) on a volume restored from a
 * snapshot without a provisioned initialization rate: blocks not yet fetched
 * come from S3 on first read. A conservative figure, not an AWS promise;
 * with a provisioned rate, that rate is used.
 */
export const assumedLazyReadMiBps = 40;

/** Mounting, starting the server and reporting: a fixed margin on top. */
const marginSeconds = 15 * 60;

/** The longest an SSM Run Command script may run (aws:runShellScript timeoutSeconds: 172800). */
export const maxHostStepSeconds = 172_800;

export interface HostTime {
  /** Passed to the host as `--recovery-timeout` (seconds, as text: an SSM parameter). */
  recoverySeconds: string;
  /** The host step's Step Functions timeout (TimeoutSecondsPath). */
  stepSeconds: number;
}

/**
 * The host step's budget: the configured recovery time, then the checks
 * over `dataBytes` at the provisioned rate or the assumed lazy read rate,
 * then a margin; capped at SSM's limit, with the recovery time shortened to
 * fit under the step's timeout when the cap bites.
 */
export function hostTime(options: {
  recoverySeconds?: number | undefined;
  dataBytes: number;
  amcheck: boolean;
  initializationRate?: number | undefined;
}): HostTime {
  const recovery = options.recoverySeconds ?? defaultRecoverySeconds;
  const rate = options.initializationRate ?? assumedLazyReadMiBps;
  const checks = options.amcheck ? Math.ceil(options.dataBytes / (rate * 1024 * 1024)) : 0;
  const step = Math.min(recovery + checks + marginSeconds, maxHostStepSeconds);
  const fitted = Math.min(recovery, step - marginSeconds);
  return { recoverySeconds: String(fitted), stepSeconds: step };
}
