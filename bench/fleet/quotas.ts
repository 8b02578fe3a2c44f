/**
 * The published AWS limits the fleet model enforces, and the errors AWS
 * answers with when one is exceeded (as the SDK v3 raises them: the error
 * code as `name`, a 4xx status, so that the SDK's retry strategy and the state
 * machine's Retry see what they would see from AWS).
 *
 * Sources (cited in bench/README.md):
 * - EC2 API token buckets: docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html
 * - EBS quotas: docs.aws.amazon.com/ebs/latest/userguide/ebs-resource-quotas.html
 * - Step Functions API quotas: docs.aws.amazon.com/step-functions/latest/dg/limits.html
 * - SSM SendCommand: no published rate; the bucket below is an assumption (marked).
 */

/** A token bucket: `size` tokens, `refill` tokens per second, full at the start. */
export class TokenBucket {
  private tokens: number;
  private at: number;
  constructor(
    readonly size: number,
    readonly refill: number,
    now: number,
  ) {
    this.tokens = size;
    this.at = now;
  }
  /** Takes one token at `now` (ms), or answers false: the request is throttled. */
  take(now: number): boolean {
    this.tokens = Math.min(this.size, this.tokens + ((now - this.at) / 1000) * this.refill);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export type BucketName = keyof typeof buckets;

/** Bucket size and refill per second, per account and Region. */
export const buckets = {
  /** CreateSnapshot(s), CreateVolume, DeleteSnapshot, DeleteVolume, ModifySnapshotAttribute. */
  'ec2:create-snapshot': { size: 100, refill: 5 },
  'ec2:tags': { size: 100, refill: 10 },
  /** Every other mutating action: CopySnapshot, LockSnapshot, AttachVolume… */
  'ec2:mutating-other': { size: 50, refill: 5 },
  /** Describe* with a filter or ids. */
  'ec2:describe': { size: 100, refill: 20 },
  /** DescribeSnapshots/Volumes/Instances with neither filter nor ids. */
  'ec2:describe-unfiltered': { size: 50, refill: 10 },
  'sfn:StartExecution': { size: 1300, refill: 300 },
  'sfn:ListExecutions': { size: 100, refill: 5 },
  'sfn:DescribeExecution': { size: 250, refill: 15 },
  'sfn:SendTask': { size: 3000, refill: 500 },
  /** Assumed: SSM does not publish SendCommand's rate (aws/aws-rfdk#1723, boto/botocore#993 report throttling). */
  'ssm:SendCommand': { size: 50, refill: 10 },
} as const;

/** The EBS quotas (per account and Region, per volume, per destination Region). */
export const ebsQuotas = {
  pendingSnapshotsPerRegion: 100,
  concurrentSnapshotsPerVolume: 5,
  concurrentCopiesPerDestinationRegion: 20,
} as const;

/** The transition rate Step Functions allows (large Regions; not enforced, reported). */
export const stateTransitionRefillPerSecond = 1500;

/** Error codes that say "slow down" or "no capacity now": a retry later may succeed. */
export const throttlingCodes = new Set([
  'RequestLimitExceeded',
  'ThrottlingException',
  'Ssm.ThrottlingException',
  'Sfn.ThrottlingException',
  'PendingSnapshotLimitExceeded',
  'ConcurrentSnapshotLimitExceeded',
  'ResourceLimitExceeded',
  'SnapshotCreationPerVolumeRateExceeded',
]);

export interface AwsError extends Error {
  $fault: 'client' | 'server';
  $metadata: { httpStatusCode: number };
}

/** An error as the AWS SDK v3 raises it for `code`. */
export function awsError(code: string, message: string, status = 400): AwsError {
  const error = new Error(message) as AwsError;
  error.name = code;
  error.$fault = status >= 500 ? 'server' : 'client';
  error.$metadata = { httpStatusCode: status };
  return error;
}

/** The EC2 bucket an action draws from; `filtered` says whether a Describe named ids or filters. */
export function ec2Bucket(action: string, filtered: boolean): BucketName {
  if (/^(CreateSnapshots?|CreateVolume|DeleteSnapshot|DeleteVolume|ModifySnapshotAttribute)$/.test(action)) {
    return 'ec2:create-snapshot';
  }
  if (action === 'CreateTags' || action === 'DeleteTags') return 'ec2:tags';
  if (action.startsWith('Describe')) {
    const unfilteredKind = /^Describe(Snapshots|Volumes|Instances)$/.test(action);
    return unfilteredKind && !filtered ? 'ec2:describe-unfiltered' : 'ec2:describe';
  }
  return 'ec2:mutating-other';
}
