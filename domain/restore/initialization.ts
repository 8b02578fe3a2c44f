/**
 * The measured side of time to full speed: once the restored server is
 * open, one DescribeVolumeStatus of the restore's volumes. For a volume made
 * with a provisioned initialization rate, EBS answers its progress and its
 * own estimate of the time left (InitializationStatusDetails:
 * estimatedTimeToCompleteInSeconds, "Only available for volumes created with
 * Amazon EBS Provisioned Rate for Volume Initialization"; EC2 API reference);
 * at the default rate it answers the progress only, and the time to full
 * speed stays the model's estimate (full-speed.ts). The details "can take up
 * to 5 minutes … to be updated" (VolumeStatusItem): a volume without them
 * yet is reported as not measured, never as initialized. The documented
 * sources are quoted in local/aws-facts.ts.
 */
import { DescribeVolumeStatusCommand, type EC2Client, type VolumeStatusItem } from '@aws-sdk/client-ec2';
import { ec2Errors, isEventual, type Patience, retrying } from '../ebs/ec2-api.ts';
import type { RestoreRecord } from '../repository/restore-record.ts';

/** What DescribeVolumeStatus said of the restore's volumes at `at`. */
export type InitializationMeasure = NonNullable<NonNullable<RestoreRecord['initialization']>['measured']>;

/** The initialization details of each volume, by id (absent: EBS gave none yet). */
export async function describeInitialization(
  ec2: EC2Client,
  volumeIds: string[],
  patience?: Patience,
): Promise<Map<string, NonNullable<VolumeStatusItem['InitializationStatusDetails']>>> {
  const details = new Map<string, NonNullable<VolumeStatusItem['InitializationStatusDetails']>>();
  if (volumeIds.length === 0) return details;
  let token: string | undefined;
  do {
    const page = await retrying(
      () => ec2.send(new DescribeVolumeStatusCommand({ VolumeIds: volumeIds, NextToken: token })),
      isEventual(ec2Errors.volumeNotFound),
      patience,
    );
    for (const item of page.VolumeStatuses ?? []) {
      if (item.VolumeId && item.InitializationStatusDetails) {
        details.set(item.VolumeId, item.InitializationStatusDetails);
      }
    }
    token = page.NextToken;
  } while (token);
  return details;
}

/**
 * The restore's volumes measured at `now`: the least progress among them and,
 * when every volume has EBS's estimate (a provisioned rate), the longest time
 * left, since the restore is at full speed only when its slowest volume is.
 */
export async function measureInitialization(
  ec2: EC2Client,
  volumeIds: string[],
  now = new Date(),
  patience?: Patience,
): Promise<InitializationMeasure> {
  const details = await describeInitialization(ec2, volumeIds, patience);
  const all = volumeIds.map((id) => details.get(id));
  const known = all.filter((d) => d !== undefined);
  const progress =
    volumeIds.length > 0 && known.length === volumeIds.length
      ? Math.min(100, ...known.map((d) => d.Progress ?? 0))
      : undefined;
  const estimates = known.map((d) =>
    d.InitializationType === 'provisioned-rate' ? d.EstimatedTimeToCompleteInSeconds : undefined,
  );
  const remainingSeconds =
    volumeIds.length > 0 && estimates.length === volumeIds.length && estimates.every((e) => e !== undefined)
      ? Math.max(0, ...(estimates as number[]))
      : undefined;
  return {
    at: now.toISOString(),
    volumes: volumeIds.length,
    reported: known.length,
    ...(progress !== undefined ? { progress } : {}),
    ...(remainingSeconds !== undefined ? { remainingSeconds } : {}),
  };
}
