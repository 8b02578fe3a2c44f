/**
 * Every retry policy for AWS's throttling and capacity answers, in one place:
 * which error names are worth another try (by service), the SDK clients'
 * settings, the in-code `retrying()` with full jitter, and the state
 * machines' `Retry` fields (infra/steps.ts turns them into CDK's).
 *
 * All wait "a random time between 0 and min(cap, base·2ⁿ)", the full jitter
 * of AWS's *Exponential Backoff And Jitter*, so that the hundreds of backups a
 * fleet starts together do not come back together; all are bounded. Any other
 * error fails at once.
 */

/**
 * Throttling, by service, as each names it (each service's API reference,
 * *Common errors*): EC2's RequestLimitExceeded; SSM's, Step Functions' and
 * KMS's ThrottlingException; STS's Throttling; S3's SlowDown (503).
 * `Ssm.ThrottlingException` and friends are the names a state machine's
 * AWS SDK integration gives them.
 */
export const throttlingErrors = {
  ec2: ['RequestLimitExceeded'],
  ssm: ['ThrottlingException', 'Ssm.ThrottlingException'],
  sfn: ['ThrottlingException', 'Sfn.ThrottlingException'],
  kms: ['ThrottlingException', 'Kms.ThrottlingException'],
  sts: ['Throttling', 'ThrottlingException'],
  s3: ['SlowDown', 'ServiceUnavailable', 'S3.SlowDown'],
  cloudwatch: ['Throttling', 'ThrottlingException', 'CloudWatch.ThrottlingException'],
  lambda: ['Lambda.TooManyRequestsException', 'TooManyRequestsException'],
} as const;

/** Every throttling name above, once. */
export const anyThrottlingError: readonly string[] = [...new Set(Object.values(throttlingErrors).flat())];

/**
 * EBS capacity answers that pass with time (EBS quotas page; EC2 API
 * reference, error codes): 5 concurrent snapshots per gp2/gp3/io1/io2 volume
 * (1 for st1/sc1), 100 pending per account, and AWS's "wait 15 seconds
 * between create-snapshot API requests for the same volume".
 */
export const snapshotCapacityErrors = [
  'SnapshotCreationPerVolumeRateExceeded',
  'ConcurrentSnapshotLimitExceeded',
  'PendingSnapshotLimitExceeded',
] as const;

/** Faults on AWS's side that a later try usually does not meet. */
export const serviceFaults = ['InternalError', 'ServiceUnavailable', 'InternalFailure'] as const;

/** Whether `error` is a throttling answer of any service. */
export function isThrottled(error: unknown): boolean {
  const { name, $metadata } = (error ?? {}) as { name?: string; $metadata?: { httpStatusCode?: number } };
  return anyThrottlingError.includes(name ?? '') || (name === undefined && $metadata?.httpStatusCode === 503);
}

/** Whether `error` is throttling or an EBS snapshot capacity answer. */
export function isThrottledOrAtCapacity(error: unknown): boolean {
  return isThrottled(error) || (snapshotCapacityErrors as readonly string[]).includes((error as Error)?.name);
}

/**
 * The settings every SDK client of the Lambdas and the agent is given: the
 * SDK's adaptive mode (a client-side token bucket that slows the caller down
 * when AWS throttles, on top of the standard mode's retry of throttling names
 * with jittered backoff), bounded at `maxAttempts` tries per call.
 */
export const sdkRetry = { retryMode: 'adaptive', maxAttempts: 5 } as const;

export interface Patience {
  attempts: number;
  baseMs: number;
  capMs: number;
  sleep?: (ms: number) => Promise<void>;
}

/** A few seconds, then longer, for about a minute in all: within one Lambda step. */
export const defaultPatience: Patience = { attempts: 8, baseMs: 250, capMs: 15_000 };

/**
 * `operation`, tried again while `retryable(error)`, after an exponential
 * backoff with full jitter (a random wait between 0 and min(cap, base·2ⁿ)),
 * at most `attempts` times.
 */
export async function retrying<T>(
  operation: () => Promise<T>,
  retryable: (error: unknown) => boolean,
  patience: Patience = defaultPatience,
): Promise<T> {
  const sleep = patience.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (error) {
      if (attempt >= patience.attempts || !retryable(error)) throw error;
      await sleep(Math.random() * Math.min(patience.capMs, patience.baseMs * 2 ** attempt));
    }
  }
}

/** A state machine `Retry`, in plain numbers (infra/steps.ts `retryOf` makes CDK's RetryProps of it). */
export interface StateRetryPolicy {
  errors: readonly string[];
  intervalSeconds: number;
  backoffRate: number;
  maxAttempts: number;
  maxDelaySeconds: number;
  jitter: 'FULL';
}

/** The longest a policy may wait in all: the sum of its capped intervals (jitter only shortens them). */
export function longestWaitSeconds(policy: StateRetryPolicy): number {
  let total = 0;
  for (let n = 0; n < policy.maxAttempts; n++) {
    total += Math.min(policy.maxDelaySeconds, policy.intervalSeconds * policy.backoffRate ** n);
  }
  return total;
}

/**
 * The state machines' policies. `throttled` goes on every Lambda and AWS SDK
 * step. `snapshotCapacity` goes on the create-snapshots step, which runs in
 * backup mode: its waits are capped, a minute at most in all (a tenth of the
 * default 60-minute `maxBackupMinutes`, which the host enforces whatever the
 * retries do), and it runs before `end`, so no retry after `end` could have
 * run keeps the server in backup mode. Steps after `end` retry with `throttled` outside the window.
 */
export const stateRetries = {
  throttled: {
    errors: [...new Set([...anyThrottlingError, ...serviceFaults])],
    intervalSeconds: 2,
    backoffRate: 2,
    maxAttempts: 6,
    maxDelaySeconds: 60,
    jitter: 'FULL',
  },
  /**
   * SSM's own throttling of the SendCommand that starts a host step (a state
   * machine's SDK integration names it `Ssm.<code>`). Only that name: an
   * error the agent reports for the command itself is the agent's to retry.
   */
  sendCommand: {
    errors: ['Ssm.ThrottlingException'],
    intervalSeconds: 2,
    backoffRate: 2,
    maxAttempts: 6,
    maxDelaySeconds: 60,
    jitter: 'FULL',
  },
  snapshotCapacity: {
    errors: [
      ...throttlingErrors.ec2,
      ...snapshotCapacityErrors,
      ...throttlingErrors.lambda,
      ...serviceFaults,
    ],
    intervalSeconds: 2,
    backoffRate: 2,
    maxAttempts: 5,
    // AWS's advice for SnapshotCreationPerVolumeRateExceeded: 15 s between creates on one volume.
    maxDelaySeconds: 30,
    jitter: 'FULL',
  },
} as const satisfies Record<string, StateRetryPolicy>;
