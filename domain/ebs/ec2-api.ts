/**
 * What the EC2 API answers that the restore's code must act on: its error
 * codes, and how long a resource it just made may stay invisible. The
 * documented sources of each fact are in local/aws-facts.ts, which the tests
 * and the local EC2 use as their oracle.
 *
 * "If you run a command to modify or describe the resource that you just
 * created, its ID might not have propagated throughout the system, and you
 * will get an error responding that the resource does not exist. […] Run the
 * Describe command repeatedly, starting with a couple of seconds of wait time,
 * and increasing gradually up to a few minutes of wait time." (EC2 API,
 * *Eventual consistency in the Amazon EC2 API*)
 */

/** Error codes of the EC2 API (EC2 API reference, *Error codes for the Amazon EC2 API*). */
export const ec2Errors = {
  instanceNotFound: 'InvalidInstanceID.NotFound',
  volumeNotFound: 'InvalidVolume.NotFound',
  incorrectState: 'IncorrectState',
  volumeInUse: 'VolumeInUse',
  attachmentNotFound: 'InvalidAttachment.NotFound',
  /** Also "Attachment point /dev/sdf is already in use" on AttachVolume. */
  invalidParameterValue: 'InvalidParameterValue',
  invalidParameterCombination: 'InvalidParameterCombination',
  unauthorized: 'UnauthorizedOperation',
  throttled: 'RequestLimitExceeded',
} as const;

/** Throttling, by service: EC2's RequestLimitExceeded, SSM's and most others' ThrottlingException. */
export const throttlingErrors = [ec2Errors.throttled, 'ThrottlingException', 'Ssm.ThrottlingException'];

/**
 * How long a resource the restore just made (RunInstances, CreateVolume) may
 * answer NotFound, or be missing from a tag-filtered Describe, before its
 * absence means it is gone: "up to a few minutes" (EC2 API, eventual consistency).
 */
export const eventualConsistencySeconds = 300;

/** Whether an AttachVolume error says the device name is taken on the instance. */
export function isAttachmentPointInUse(error: unknown): boolean {
  const { name, message } = error as Error;
  return name === ec2Errors.invalidParameterValue && /Attachment point .* is already in use/i.test(message);
}

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
 * backoff with full jitter (a random wait between 0 and min(cap, base·2ⁿ), as
 * AWS's *Exponential Backoff And Jitter* recommends), at most `attempts` times.
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

/** An error that a just-made resource, or a throttled API, answers for a while. */
export function isEventual(...notFound: string[]): (error: unknown) => boolean {
  return (error) => {
    const name = (error as Error).name;
    return notFound.includes(name) || throttlingErrors.includes(name);
  };
}
