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

import { throttlingErrors as awsThrottling } from '../aws-retry.ts';

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

/** Throttling of the services a restore step calls (domain/aws-retry.ts names every service's). */
export const throttlingErrors: readonly string[] = [
  ...awsThrottling.ec2,
  ...awsThrottling.ssm,
  ...awsThrottling.sts,
  ...awsThrottling.kms,
];

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

export { defaultPatience, type Patience, retrying } from '../aws-retry.ts';

/** An error that a just-made resource, or a throttled API, answers for a while. */
export function isEventual(...notFound: string[]): (error: unknown) => boolean {
  return (error) => {
    const name = (error as Error).name;
    return notFound.includes(name) || throttlingErrors.includes(name);
  };
}
