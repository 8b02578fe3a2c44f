/**
 * The repository bucket: WAL and backup artifacts. Created with what an
 * operator of a backup store expects (no public access, TLS only, SSE-KMS,
 * versioning so an overwrite or delete can be undone, noncurrent versions
 * expired), or an existing bucket imported by name.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
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
}
