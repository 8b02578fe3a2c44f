/**
 * The repository bucket: WAL and backup artifacts. Created with what an
 * operator of a backup store expects (repositoryBucketIn, which the DR stack's
 * bucket uses too), or an existing bucket imported by name.
 */
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { AnyPrincipal, Effect, PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { type IKey, Key } from 'aws-cdk-lib/aws-kms';
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  type CfnBucket,
  type IBucket,
  ObjectLockRetention,
  ObjectOwnership,
} from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

export interface RepositoryBucketProps {
  /** Import this bucket instead of creating one. */
  bucketName?: string;
  /** Noncurrent object versions are kept this long. */
  noncurrentVersionDays?: number;
}

export interface RepositoryBucketOptions {
  /** The key that encrypts the objects (SSE-KMS, with a bucket key). */
  key: IKey;
  /** A fixed name (the DR bucket's, which the source stack names); otherwise CloudFormation's. */
  bucketName?: string;
  /** Where the bucket's access logs go in the access-log bucket. */
  accessLogsPrefix: string;
  /** Noncurrent object versions are kept this long. */
  noncurrentVersionDays: number;
  /** Who owns the objects others write (default: the bucket owner, ACLs disabled). */
  objectOwnership?: ObjectOwnership;
  /** Object Lock's default retention for every new object version. */
  objectLock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number };
}

/**
 * The one definition of a pgsnap repository bucket, for the source stack
 * (RepositoryBucket) and the DR stack: no public access, TLS only, SSE-KMS
 * with `key`, versioning (replication needs it; it also lets an overwrite or
 * delete be undone), noncurrent versions expired, incomplete uploads aborted,
 * access logs in a bucket of their own, both kept when the stack goes. Made in
 * `scope` as `AccessLogs` and `Bucket`, so that each stack keeps the logical
 * ids its deployments already have.
 */
export function repositoryBucketIn(scope: Construct, options: RepositoryBucketOptions): Bucket {
  const accessLogs = new Bucket(scope, 'AccessLogs', {
    blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
    enforceSSL: true,
    encryption: BucketEncryption.S3_MANAGED,
    // No ACLs: S3 server access logging writes through the bucket policy below.
    objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
    lifecycleRules: [{ expiration: Duration.days(365) }],
    removalPolicy: RemovalPolicy.RETAIN,
  });
  const { objectLock } = options;
  const bucket = new Bucket(scope, 'Bucket', {
    ...(options.bucketName ? { bucketName: options.bucketName } : {}),
    blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
    enforceSSL: true,
    encryption: BucketEncryption.KMS,
    encryptionKey: options.key,
    bucketKeyEnabled: true,
    // ACLs disabled: whoever writes, the bucket's account owns the objects and policies alone decide.
    objectOwnership: options.objectOwnership ?? ObjectOwnership.BUCKET_OWNER_ENFORCED,
    versioned: true,
    ...(objectLock
      ? {
          objectLockEnabled: true,
          objectLockDefaultRetention:
            objectLock.mode === 'COMPLIANCE'
              ? ObjectLockRetention.compliance(Duration.days(objectLock.days))
              : ObjectLockRetention.governance(Duration.days(objectLock.days)),
        }
      : {}),
    lifecycleRules: [
      {
        noncurrentVersionExpiration: Duration.days(options.noncurrentVersionDays),
        abortIncompleteMultipartUploadAfter: Duration.days(7),
      },
    ],
    removalPolicy: RemovalPolicy.RETAIN,
  });
  /*
   * Access logs with ACLs disabled: the logging service writes by the log bucket's policy, from this bucket
   * and account only (S3 user guide, "Permissions for log delivery"). Set on the L1 bucket, as CDK would do
   * only under a feature flag; with ACLs it would grant LogDeliveryWrite, which BucketOwnerEnforced refuses.
   */
  (bucket.node.defaultChild as CfnBucket).loggingConfiguration = {
    destinationBucketName: accessLogs.bucketName,
    logFilePrefix: options.accessLogsPrefix,
  };
  accessLogs.addToResourcePolicy(
    new PolicyStatement({
      sid: 'S3ServerAccessLogsPolicy',
      principals: [new ServicePrincipal('logging.s3.amazonaws.com')],
      actions: ['s3:PutObject'],
      resources: [accessLogs.arnForObjects(`${options.accessLogsPrefix}*`)],
      conditions: {
        ArnLike: { 'aws:SourceArn': bucket.bucketArn },
        StringEquals: { 'aws:SourceAccount': Stack.of(scope).account },
      },
    }),
  );
  return bucket;
}

export class RepositoryBucket extends Construct {
  readonly bucket: IBucket;
  /** The key that encrypts a created bucket; imported buckets bring their own. */
  readonly key: Key | undefined;

  constructor(scope: Construct, id: string, props: RepositoryBucketProps = {}) {
    super(scope, id);
    if (props.bucketName) {
      this.bucket = Bucket.fromBucketName(this, 'Imported', props.bucketName);
      this.key = undefined;
      return;
    }
    this.key = new Key(this, 'Key', {
      description: 'pgsnap repository: WAL and backup artifacts',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.bucket = repositoryBucketIn(this, {
      key: this.key,
      accessLogsPrefix: 'repository/',
      noncurrentVersionDays: props.noncurrentVersionDays ?? 30,
    });
  }

  /**
   * Makes the objects under `keyPatterns` write-once in a bucket this stack
   * created (writeOnceIn); an imported bucket is its owner's to configure:
   * nothing is added.
   */
  writeOnce(keyPatterns: string[]): void {
    if (this.key) writeOnceIn(this.bucket, keyPatterns);
  }

  /**
   * Lets only `writers` write the objects under `keyPatterns` of a bucket
   * this stack created (recordsWrittenOnlyBy); an imported bucket is its
   * owner's to configure: nothing is added.
   */
  recordsWrittenOnlyBy(keyPatterns: string[], writers: string[]): void {
    if (this.key) recordsWrittenOnlyBy(this.bucket, keyPatterns, writers);
  }
}

/**
 * The keys of one cluster's repository that the orchestrator records and no
 * one else writes: the manifests and the restore records (DESIGN.md, "Trust").
 */
export function recordKeys(root: string): string[] {
  return [`${root}/backups/*/manifest.json`, `${root}/restores/*`];
}

/** Every way to create, replace, delete or pin an object (version) under a key. */
const objectWrites = [
  's3:PutObject',
  's3:DeleteObject',
  's3:DeleteObjectVersion',
  's3:PutObjectRetention',
  's3:PutObjectLegalHold',
  's3:PutObjectTagging',
  's3:PutObjectAcl',
  's3:ReplicateObject',
  's3:ReplicateDelete',
  's3:RestoreObject',
];

/**
 * Only `writers` (role ARNs: the stack's Lambdas, which record) may write,
 * delete, lock or tag the objects under `keyPatterns` (recordKeys) of
 * `bucket`: everyone else is denied by the bucket, whatever their own
 * policies allow. So a database host, whose PostgreSQL superuser can reach
 * the instance role, cannot forge the manifests retention acts on or the
 * restore records a restore target acts on, even when an operator's policy
 * grants it all of S3; and in DR no source principal can. For an IAM role,
 * aws:PrincipalArn is the role's ARN whichever session uses it
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-principalarn).
 * An administrator who must repair a record edits this statement first.
 */
export function recordsWrittenOnlyBy(bucket: IBucket, keyPatterns: string[], writers: string[]): void {
  if (keyPatterns.length === 0) return;
  bucket.addToResourcePolicy(
    new PolicyStatement({
      sid: 'OnlyTheOrchestratorWritesManifestsAndRestoreRecords',
      effect: Effect.DENY,
      principals: [new AnyPrincipal()],
      actions: objectWrites,
      resources: keyPatterns.map((pattern) => bucket.arnForObjects(pattern)),
      conditions: { ArnNotEquals: { 'aws:PrincipalArn': writers } },
    }),
  );
}

/**
 * The write-once keys of one cluster's repository: the pin, the WAL and the
 * artifacts never change once written (DESIGN.md); the manifests and restore
 * records do.
 */
export function writeOnceKeys(root: string): string[] {
  return [
    `${root}/cluster.json`,
    `${root}/wal/*`,
    `${root}/backups/*/backup_label`,
    `${root}/backups/*/tablespace_map`,
    `${root}/backups/*.backup`,
  ];
}

/**
 * Makes the objects under `keyPatterns` (e.g. `pgsnap/orders-db/wal/*`) of
 * `bucket` write-once, whoever writes them: the bucket denies a PutObject (and
 * a CompleteMultipartUpload, the same action) that is not conditional on the
 * key being absent (`If-None-Match: *`), so an object once there can be
 * neither overwritten nor replaced, and a host that loses its own client-side
 * check gains nothing
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html).
 * Multipart uploads are refused altogether under these keys (their first
 * request carries no condition); pgsnap writes single PutObjects. Replication
 * writes with s3:ReplicateObject, which this does not touch.
 */
export function writeOnceIn(bucket: IBucket, keyPatterns: string[]): void {
  if (keyPatterns.length === 0) return;
  bucket.addToResourcePolicy(
    new PolicyStatement({
      sid: 'WalAndArtifactsAreWriteOnce',
      effect: Effect.DENY,
      principals: [new AnyPrincipal()],
      actions: ['s3:PutObject'],
      resources: keyPatterns.map((pattern) => bucket.arnForObjects(pattern)),
      conditions: { Null: { 's3:if-none-match': 'true' } },
    }),
  );
}
