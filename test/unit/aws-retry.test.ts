/** Each retry policy of domain/aws-retry.ts: the names it retries, its bound, and an error it never retries. */
import { describe, expect, it } from 'vitest';
import {
  isThrottled,
  isThrottledOrAtCapacity,
  longestWaitSeconds,
  retrying,
  sdkRetry,
  snapshotCapacityErrors,
  stateRetries,
  throttlingErrors,
} from '#domain/aws-retry';

const named = (name: string) => Object.assign(new Error(name), { name });

function failing(names: string[]) {
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    operation: async () => {
      const name = names[calls++];
      if (name) throw named(name);
      return 'done';
    },
  };
}

const recordWaits = () => {
  const waits: number[] = [];
  return { waits, sleep: async (ms: number) => void waits.push(ms) };
};

describe('retrying with full jitter', () => {
  it('waits out every service throttling and EBS capacity answer, each wait random below a growing cap', async () => {
    const answers = [
      ...throttlingErrors.ec2,
      ...snapshotCapacityErrors,
      throttlingErrors.ssm[0],
      throttlingErrors.s3[0],
      throttlingErrors.sts[0],
    ];
    const op = failing(answers);
    const { waits, sleep } = recordWaits();
    await expect(
      retrying(op.operation, isThrottledOrAtCapacity, { attempts: 10, baseMs: 100, capMs: 5_000, sleep }),
    ).resolves.toBe('done');
    expect(op.calls).toBe(answers.length + 1);
    waits.forEach((ms, n) => {
      expect(ms).toBeGreaterThanOrEqual(0);
      expect(ms).toBeLessThanOrEqual(Math.min(5_000, 100 * 2 ** (n + 1)));
    });
  });

  it('fails at once on an error that is not throttling or capacity', async () => {
    for (const name of [
      'UnauthorizedOperation',
      'InvalidVolume.NotFound',
      'AccessDenied',
      'ValidationException',
    ]) {
      const op = failing([name]);
      const { waits, sleep } = recordWaits();
      await expect(
        retrying(op.operation, isThrottledOrAtCapacity, { attempts: 5, baseMs: 1, capMs: 1, sleep }),
      ).rejects.toThrow(name);
      expect(op.calls).toBe(1);
      expect(waits).toEqual([]);
    }
  });

  it('is bounded: a throttle that never passes fails after the attempts', async () => {
    const op = failing(Array(20).fill('RequestLimitExceeded'));
    const { sleep } = recordWaits();
    await expect(
      retrying(op.operation, isThrottled, { attempts: 4, baseMs: 1, capMs: 1, sleep }),
    ).rejects.toThrow('RequestLimitExceeded');
    expect(op.calls).toBe(4);
  });

  it('takes a bare HTTP 503 (S3 SlowDown without a code) for throttling, a capacity answer not for throttling', () => {
    expect(isThrottled({ $metadata: { httpStatusCode: 503 } })).toBe(true);
    expect(isThrottled(named('PendingSnapshotLimitExceeded'))).toBe(false);
    expect(isThrottledOrAtCapacity(named('PendingSnapshotLimitExceeded'))).toBe(true);
  });
});

describe('the SDK clients', () => {
  it('use the adaptive mode, bounded', () => {
    expect(sdkRetry).toEqual({ retryMode: 'adaptive', maxAttempts: 5 });
  });
});

describe('the state machines’ policies', () => {
  it('all use full jitter and a bounded number of attempts and delay', () => {
    for (const policy of Object.values(stateRetries)) {
      expect(policy.jitter).toBe('FULL');
      expect(policy.maxAttempts).toBeLessThanOrEqual(6);
      expect(policy.maxDelaySeconds).toBeLessThanOrEqual(60);
      expect(policy.errors).not.toContain('States.ALL');
      expect(new Set(policy.errors).size).toBe(policy.errors.length);
    }
  });

  it('throttled covers every service’s throttling name and no error of the caller', () => {
    for (const names of Object.values(throttlingErrors)) {
      for (const name of names) expect(stateRetries.throttled.errors).toContain(name);
    }
    for (const name of [
      'States.TaskFailed',
      'InvalidInputError',
      'AccessDeniedException',
      'States.Timeout',
    ]) {
      expect(stateRetries.throttled.errors).not.toContain(name);
    }
  });

  it('snapshotCapacity retries EBS capacity and EC2 throttling, within a small share of the shortest window', () => {
    for (const name of [...snapshotCapacityErrors, 'RequestLimitExceeded']) {
      expect(stateRetries.snapshotCapacity.errors).toContain(name);
    }
    expect(stateRetries.snapshotCapacity.errors).not.toContain('InvalidInstanceID.NotFound');
    // A minute at most in backup mode: a tenth of the default 60-minute maxBackupMinutes.
    expect(longestWaitSeconds(stateRetries.snapshotCapacity)).toBeLessThanOrEqual(60);
  });

  it('sendCommand retries only SSM’s own throttling, never an error the agent reported', () => {
    expect(stateRetries.sendCommand.errors).toEqual(['Ssm.ThrottlingException']);
  });
});
