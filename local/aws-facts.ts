/**
 * AWS's documented semantics of the EC2 calls a restore makes, in one place:
 * the oracle the IAM evaluation (test/support/aws-requests.ts) and the local
 * EC2 (local/local-ec2.ts) consult, so that neither shares the restore code's
 * assumptions. Each fact names the page it comes from and quotes it.
 */
import { ec2Errors, eventualConsistencySeconds } from '#domain/ebs/ec2-api';

export interface Source {
  url: string;
  says: string;
}

/** An EC2 resource type as IAM names it in an ARN (`arn:aws:ec2:region:account:<type>/<id>`). */
export type Ec2ResourceType = 'instance' | 'volume' | 'network-interface';

export const awsFacts = {
  /**
   * RunInstances creates an instance, its EBS volumes (the root volume
   * always) and its network interfaces, and IAM authorizes each created
   * resource with the request tags given for its own type.
   */
  runInstancesCreates: {
    resources: ['instance', 'volume', 'network-interface'] as Ec2ResourceType[],
    sources: [
      {
        url: 'https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_RunInstances.html',
        says: 'TagSpecification.N — The tags to apply to the resources that are created during instance launch. You can specify tags for the following resources only: Instances, Volumes, Spot Instance requests, Network interfaces.',
      },
      {
        url: 'https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html',
        // The page's actions table, summarized (it has no sentence to quote).
        says: 'RunInstances — resource types: instance, network-interface, security-group, subnet, volume (required), image, key-pair, launch-template; condition keys aws:RequestTag/<TagKey>, aws:TagKeys',
      },
    ] satisfies Source[],
  },
  /** CreateVolume creates a volume, tagged with its own TagSpecification, from a snapshot it reads. */
  createVolumeCreates: {
    resources: ['volume'] as Ec2ResourceType[],
    sources: [
      {
        url: 'https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateVolume.html',
        says: 'TagSpecification.N — The tags to apply to the volume during creation.',
      },
    ] satisfies Source[],
  },
  /**
   * Using a customer managed key for EBS (CreateVolume from an encrypted
   * snapshot, RunInstances with an encrypted block device, AttachVolume of an
   * encrypted volume) needs the caller's KMS rights; EC2 creates a grant with
   * the caller's identity, for an AWS resource.
   */
  ebsEncryption: {
    callerActions: [
      'kms:CreateGrant',
      'kms:Decrypt',
      'kms:DescribeKey',
      'kms:GenerateDataKeyWithoutPlaintext',
      'kms:ReEncryptFrom',
      'kms:ReEncryptTo',
    ],
    /** What each call makes KMS check as the caller, for a volume under a customer managed key. */
    byCall: {
      CreateVolume: [
        'kms:CreateGrant',
        'kms:Decrypt',
        'kms:DescribeKey',
        'kms:GenerateDataKeyWithoutPlaintext',
      ],
      RunInstances: [
        'kms:CreateGrant',
        'kms:Decrypt',
        'kms:DescribeKey',
        'kms:GenerateDataKeyWithoutPlaintext',
      ],
      AttachVolume: ['kms:CreateGrant'],
    } as Record<'CreateVolume' | 'RunInstances' | 'AttachVolume', string[]>,
    /** The condition keys KMS sees on the grant EC2 makes. */
    grantContext: (region: string) => ({
      'kms:ViaService': `ec2.${region}.amazonaws.com`,
      'kms:GrantIsForAWSResource': 'true',
    }),
    sources: [
      {
        url: 'https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption-requirements.html',
        says: 'You must grant users permission to call the following actions in order to use EBS encryption: kms:CreateGrant, kms:Decrypt, kms:DescribeKey, kms:GenerateDataKeyWithoutPlainText, kms:ReEncrypt',
      },
      {
        url: 'https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption-requirements.html',
        says: "use the kms:GrantIsForAWSResource condition key to allow the user to create grants on the KMS key only when the grant is created on the user's behalf by an AWS service",
      },
    ] satisfies Source[],
  },
  /**
   * What EC2 shows late: a resource just made answers NotFound by its id, and
   * is missing from tag-filtered Describes, for up to a few minutes.
   */
  eventualConsistency: {
    notFoundAfterCreate: {
      RunInstances: ec2Errors.instanceNotFound,
      CreateVolume: ec2Errors.volumeNotFound,
    },
    toleranceSeconds: eventualConsistencySeconds,
    sources: [
      {
        url: 'https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html',
        says: "If you successfully run the RunInstances command, and then immediately run another command using the instance ID that was provided in the response of RunInstances, it might return an InvalidInstanceID.NotFound error. This doesn't mean the instance doesn't exist.",
      },
      {
        url: 'https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html',
        says: "If you get an InvalidInstanceID.NotFound error after running TerminateInstances, this doesn't mean that the instance was or will be terminated. Your instance could still be running.",
      },
      {
        url: 'https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html',
        says: 'Run the Describe command repeatedly, starting with a couple of seconds of wait time, and increasing gradually up to a few minutes of wait time.',
      },
    ] satisfies Source[],
  },
  /**
   * Volume initialization: a volume made from a snapshot fetches its blocks
   * from S3; with a provisioned rate (CreateVolume VolumeInitializationRate,
   * 100–300 MiB/s) DescribeVolumeStatus reports the progress and EBS's own
   * estimate of the time left, which pgsnap records as the measured time to
   * full speed (domain/restore/initialization.ts); at the default rate it
   * reports progress only, and pgsnap's figure stays an estimate.
   */
  volumeInitialization: {
    rateRange: { min: 100, max: 300 },
    types: ['default', 'provisioned-rate', 'volume-copy'] as const,
    /** DescribeVolumeStatus gives EstimatedTimeToCompleteInSeconds only for this type. */
    estimatedTimeOnlyFor: 'provisioned-rate',
    /** How stale DescribeVolumeStatus' initialization details may be. */
    updatedWithinSeconds: 300,
    sources: [
      {
        url: 'https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateVolume.html',
        says: 'VolumeInitializationRate — Specifies the Amazon EBS Provisioned Rate for Volume Initialization (volume initialization rate), in MiB/s, at which to download the snapshot blocks from Amazon S3 to the volume. [...] This parameter is supported only for volumes created from snapshots. [...] Valid range: 100 - 300 MiB/s',
      },
      {
        url: 'https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_VolumeStatusItem.html',
        says: 'InitializationStatusDetails — Information about the volume initialization. It can take up to 5 minutes for the volume initialization information to be updated. Only available for volumes created from snapshots. Not available for empty volumes created without a snapshot.',
      },
      {
        url: 'https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InitializationStatusDetails.html',
        says: 'estimatedTimeToCompleteInSeconds — The estimated remaining time, in seconds, for volume initialization to complete. Returns 0 when volume initialization has completed. Only available for volumes created with Amazon EBS Provisioned Rate for Volume Initialization.',
      },
      {
        url: 'https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InitializationStatusDetails.html',
        says: 'initializationType — default: Volume initialized using the default volume initialization rate or fast snapshot restore. provisioned-rate: Volume initialized using an Amazon EBS Provisioned Rate for Volume Initialization. volume-copy: Volume copy initialized at the rate for volume copies. progress — The current volume initialization progress as a percentage (0-100). Returns 100 when volume initialization has completed.',
      },
      {
        url: 'https://docs.aws.amazon.com/ebs/latest/userguide/initalize-volume.html',
        says: 'Full volume performance is achieved only once all storage blocks have been downloaded and written to the volume. [...] The default volume initialization rate fluctuates throughout the initialization process, which could make completion times unpredictable.',
      },
    ] satisfies Source[],
  },
  /**
   * DR copies: at most 20 at once per destination Region (the copy budget's
   * ceiling, infra/config/config.ts `budgets.copies`), and a time-based copy's
   * completion duration and throughput (domain/ebs/dr-copies.ts).
   */
  snapshotCopies: {
    concurrentPerDestinationRegion: 20,
    completionDurationMinutes: { min: 15, max: 2_880, step: 15 },
    throughputMiBPerSecond: { perCopy: 500, perRegionPair: 2_000 },
    sources: [
      {
        url: 'https://docs.aws.amazon.com/ebs/latest/userguide/ebs-resource-quotas.html',
        says: 'Concurrent snapshot copies per destination Region | Each supported Region: 20 | No | The maximum number of concurrent snapshot copies to a single destination Region.',
      },
      {
        url: 'https://docs.aws.amazon.com/ebs/latest/userguide/time-based-copies.html',
        says: 'With time-based snapshot and EBS-backed AMI copy operations, you specify a completion duration, between 15 minutes and 48 hours, in which the copy is to be completed. The completion duration must be specified in 15 minute increments.',
      },
      {
        url: 'https://docs.aws.amazon.com/ebs/latest/userguide/time-based-copies.html',
        says: 'Snapshot copy operation throughput quota ... 500 MiB/s | No; Cumulative snapshot copy throughput quota | The maximum cumulative throughput that can be achieved by concurrent time-based snapshot copy operations between a source and destination Region. ... 2,000 MiB/s | Yes',
      },
      {
        url: 'https://docs.aws.amazon.com/ebs/latest/userguide/time-based-copies.html',
        says: 'If you initiate a time-based snapshot copy request and your available cumulative snapshot copy throughput quota is ... less than the required throughput rate but greater than zero, the request succeeds but it will take longer',
      },
      {
        url: 'https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CopySnapshot.html',
        says: 'CompletionDurationMinutes — Specify a completion duration, in 15 minute increments, to initiate a time-based snapshot copy. Time-based snapshot copy operations complete within the specified duration. ... If you do not specify a value, the snapshot copy operation is completed on a best-effort basis.',
      },
    ] satisfies Source[],
  },
  /**
   * What a snapshot poll reads of each snapshot (and DR copy) to choose its
   * next wait (domain/ebs/poll-wait.ts): State, Progress as a percentage
   * string, StartTime. Progress is not linear in time: the snapshots of one
   * multi-volume set progress on their own but stay at 99 % until the last
   * completes, and a snapshot may show no progress for a long while (the
   * bench's EBS model, bench/fleet/ec2.ts, reports it so).
   */
  snapshotProgress: {
    states: ['pending', 'completed', 'error', 'recoverable', 'recovering'],
    /** Progress as DescribeSnapshots returns it: a whole percentage and "%". */
    format: /^\d{1,3}%$/,
    sources: [
      {
        url: 'https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Snapshot.html',
        says: 'progress — The progress of the snapshot, as a percentage. Type: String',
      },
      {
        url: 'https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Snapshot.html',
        says: 'startTime — The time stamp when the snapshot was initiated. Type: Timestamp',
      },
      {
        url: 'https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Snapshot.html',
        says: 'state — The snapshot state. Type: String. Valid Values: pending | completed | error | recoverable | recovering',
      },
      {
        url: 'https://repost.aws/knowledge-center/ebs-snapshot-ec2-ami-creation-slow',
        says: 'When you create simultaneous backups of multiple EBS volumes attached to an Amazon Elastic Compute Cloud (Amazon EC2) instance, the snapshots progress independently. However, they complete together. The entire set remains at 99% until all snapshots are complete.',
      },
      {
        url: 'https://repost.aws/knowledge-center/ebs-snapshot-stuck',
        says: 'Multiple snapshots for my Amazon Elastic Block Store (Amazon EBS) volume are stuck at less than or equal to 100% progress in pending state. ... the displayed progress percentage might be stuck for an extended period of time.',
      },
    ] satisfies Source[],
  },
  /** Errors the restore's calls meet, as EC2 answers them. */
  errors: {
    attachmentPointInUse: {
      code: ec2Errors.invalidParameterValue,
      message: (device: string, instanceId: string) =>
        `Attachment point ${device} is already in use for instance ${instanceId}`,
      source: {
        url: 'https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html',
        says: 'InvalidParameterValue — A value specified in a parameter is not valid, is unsupported, or cannot be used.',
      } satisfies Source,
    },
    networkInterfacesWithSubnet: {
      code: ec2Errors.invalidParameterCombination,
      message: 'Network interfaces and an instance-level subnet ID may not be specified on the same request',
      source: {
        url: 'https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html',
        says: 'InvalidParameterCombination — Indicates an incorrect combination of parameters, or a missing parameter.',
      } satisfies Source,
    },
    unauthorized: {
      code: ec2Errors.unauthorized,
      source: {
        url: 'https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html',
        says: 'UnauthorizedOperation — You are not authorized to perform this operation.',
      } satisfies Source,
    },
    throttled: {
      code: ec2Errors.throttled,
      source: {
        url: 'https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html',
        says: 'If an API request exceeds the API request rate for its category, the request returns the RequestLimitExceeded error code.',
      } satisfies Source,
    },
  },
} as const;
