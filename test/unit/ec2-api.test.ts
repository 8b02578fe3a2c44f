/** EC2's eventual consistency and throttling, waited out with backoff and full jitter (domain/ebs/ec2-api.ts). */
import { describe, expect, it } from 'vitest';
import { ec2Errors, isAttachmentPointInUse, isEventual, retrying } from '#domain/ebs/ec2-api';
import { awsFacts } from '../../local/aws-facts.ts';

const failing = (names: string[]) => {
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    operation: async () => {
      const name = names[calls++];
      if (name) throw Object.assign(new Error(name), { name });
      return 'done';
    },
  };
};

describe('retrying', () => {
  it('waits out NotFound and throttling, each wait a random share of an exponentially growing bound', async () => {
    const waits: number[] = [];
    const op = failing([ec2Errors.instanceNotFound, ec2Errors.throttled, ec2Errors.instanceNotFound]);
    const result = await retrying(op.operation, isEventual(ec2Errors.instanceNotFound), {
      attempts: 5,
      baseMs: 100,
      capMs: 300,
      sleep: async (ms) => {
        waits.push(ms);
      },
    });
    expect(result).toBe('done');
    expect(op.calls).toBe(4);
    waits.forEach((ms, index) => {
      expect(ms).toBeGreaterThanOrEqual(0);
      expect(ms).toBeLessThanOrEqual(Math.min(300, 100 * 2 ** (index + 1)));
    });
  });

  it('gives up after its attempts, and never retries an error that is not eventual', async () => {
    const sleep = async () => {};
    const notFound = failing(Array(5).fill(ec2Errors.volumeNotFound));
    await expect(
      retrying(notFound.operation, isEventual(ec2Errors.volumeNotFound), {
        attempts: 3,
        baseMs: 1,
        capMs: 1,
        sleep,
      }),
    ).rejects.toThrow(ec2Errors.volumeNotFound);
    expect(notFound.calls).toBe(3);
    const refused = failing([ec2Errors.unauthorized]);
    await expect(
      retrying(refused.operation, isEventual(ec2Errors.volumeNotFound), {
        attempts: 3,
        baseMs: 1,
        capMs: 1,
        sleep,
      }),
    ).rejects.toThrow(ec2Errors.unauthorized);
    expect(refused.calls).toBe(1);
  });
});

it('a taken device name is told by the error EC2 gives for it', () => {
  const inUse = awsFacts.errors.attachmentPointInUse;
  const error = Object.assign(new Error(inUse.message('/dev/sdf', 'i-0123456789abcdef0')), {
    name: inUse.code,
  });
  expect(isAttachmentPointInUse(error)).toBe(true);
  expect(isAttachmentPointInUse(Object.assign(new Error('Invalid device name'), { name: inUse.code }))).toBe(
    false,
  );
});
