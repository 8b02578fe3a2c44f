/**
 * What the Lambdas send to S3, as IAM requests: which object or bucket ARN,
 * which condition keys S3 sets, and who sends it (the Lambda's own role, or
 * the role it assumes in DR).
 */
import type { IamRequest } from './iam.ts';

export type Sender = 'own' | 'dr';
export interface Sent {
  as: Sender;
  request: IamRequest;
}

export const backupId = '20260101T030000Z-a1b2c3';
export const copierHandlers = new Set(['copy-snapshots', 'check-copies', 'record-copies']);

/** What S3 with SSE-KMS asks of KMS as the requester of a read or a write (bucket keys included). */
export function s3Requests(
  as: Sender,
  operation: string,
  bucketArn: string,
  keyArn: string,
  region: string,
  keys: string[],
  listPrefix: string,
): Sent[] {
  // With S3 Bucket Keys, S3 asks KMS with the bucket's ARN as the encryption context.
  const viaS3 = {
    'kms:ViaService': `s3.${region}.amazonaws.com`,
    'kms:EncryptionContext:aws:s3:arn': bucketArn,
  };
  const objects = (action: string) =>
    keys.map((key) => ({ as, request: { action, resource: `${bucketArn}/${key}` } }));
  switch (operation) {
    case 'GetObject':
      return [
        ...objects('s3:GetObject'),
        { as, request: { action: 'kms:Decrypt', resource: keyArn, context: viaS3 } },
      ];
    case 'HeadObject':
      return objects('s3:GetObject');
    case 'PutObject':
      return [
        // Everything but a manifest is written once, with If-None-Match (Repository: putIfAbsent).
        ...keys.map((key) => ({
          as,
          request: {
            action: 's3:PutObject',
            resource: `${bucketArn}/${key}`,
            ...(key.endsWith('/manifest.json') ? {} : { context: { 's3:if-none-match': '*' } }),
          },
        })),
        { as, request: { action: 'kms:GenerateDataKey', resource: keyArn, context: viaS3 } },
      ];
    case 'DeleteObject':
      return objects('s3:DeleteObject');
    case 'ListObjectVersions':
      return keys.map((key) => ({
        as,
        request: { action: 's3:ListBucketVersions', resource: bucketArn, context: { 's3:prefix': key } },
      }));
    case 'ListObjectsV2':
      return [
        {
          as,
          request: { action: 's3:ListBucket', resource: bucketArn, context: { 's3:prefix': listPrefix } },
        },
      ];
    default:
      throw new Error(`s3:${operation} is not in the table of requests; add where it goes`);
  }
}
