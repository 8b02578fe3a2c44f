/**
 * The repository bucket: WAL and backup artifacts. Created with what an
 * operator of a backup store expects (no public access, TLS only, SSE-KMS,
 * versioning so an overwrite or delete can be undone, noncurrent versions
 * expired), or an existing bucket imported by name.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { AnyPrincipal, Effect, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  type IBucket,
  ObjectOwnership,
} from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

export interface RepositoryBucketProps {
  /** Import this bucket instead of creating one. */
  bucketName?: string;
  /** Noncurrent object versions are kept this long. */
  noncurrentVersionDays?: number;
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
    const accessLogs = new Bucket(this, 'AccessLogs', {
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      encryption: BucketEncryption.S3_MANAGED,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_PREFERRED,
      lifecycleRules: [{ expiration: Duration.days(365) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.bucket = new Bucket(this, 'Bucket', {
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      encryption: BucketEncryption.KMS,
      encryptionKey: this.key,
      bucketKeyEnabled: true,
      versioned: true,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: 'repository/',
      lifecycleRules: [
        {
          noncurrentVersionExpiration: Duration.days(props.noncurrentVersionDays ?? 30),
          abortIncompleteMultipartUploadAfter: Duration.days(7),
        },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }

  /**
   * Makes the objects under `keyPatterns` (e.g. `pgsnap/orders-db/wal/*`)
   * write-once, whoever writes them: the bucket denies a PutObject (and a
   * CompleteMultipartUpload, the same action) that is not conditional on the
   * key being absent (`If-None-Match: *`), so an object once there can be
   * neither overwritten nor replaced, and a host that loses its own
   * client-side check gains nothing
   * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html).
   * Multipart uploads are refused altogether under these keys (their first
   * request carries no condition); pgsnap writes single PutObjects. An
   * imported bucket is its owner's to configure: nothing is added.
   */
  writeOnce(keyPatterns: string[]): void {
    if (!this.key || keyPatterns.length === 0) return;
    this.bucket.addToResourcePolicy(
      new PolicyStatement({
        sid: 'WalAndArtifactsAreWriteOnce',
        effect: Effect.DENY,
        principals: [new AnyPrincipal()],
        actions: ['s3:PutObject'],
        resources: keyPatterns.map((pattern) => this.bucket.arnForObjects(pattern)),
        conditions: { Null: { 's3:if-none-match': 'true' } },
      }),
    );
  }
}
