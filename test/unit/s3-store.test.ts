/**
 * What the S3 backend asks of S3 that a local s3rver cannot show: encryption
 * and storage-class headers, and conditional writes (s3rver ignores them).
 */
import { HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { parseRepositoryUrl, type S3Location } from '#domain/repository/location';
import { S3Store } from '#domain/repository/s3-store';

const s3 = mockClient(S3Client);
const notFound = Object.assign(new Error('NotFound'), {
  name: 'NotFound',
  $metadata: { httpStatusCode: 404 },
});

function store(url: string): S3Store {
  return new S3Store(parseRepositoryUrl(url) as S3Location, {
    client: new S3Client({ region: 'eu-west-1' }),
  });
}

describe('the S3 backend', () => {
  beforeEach(() => {
    s3.reset();
    s3.on(HeadObjectCommand).rejects(notFound);
    s3.on(PutObjectCommand).resolves({});
  });

  it('writes WAL and artifacts with SSE-KMS, the key and the storage class, and only if absent', async () => {
    const bucket = store(
      's3://backups/pg/prod?sse=aws:kms&kms-key-id=alias/pgsnap&storage-class=STANDARD_IA',
    );
    expect(
      await bucket.putIfAbsent('db/wal/000000010000000000000001.zst', Buffer.from('x'), { bulk: true }),
    ).toBe('created');
    expect(s3.commandCalls(PutObjectCommand)[0]!.args[0].input).toMatchObject({
      Bucket: 'backups',
      Key: 'pg/prod/db/wal/000000010000000000000001.zst',
      IfNoneMatch: '*',
      ServerSideEncryption: 'aws:kms',
      SSEKMSKeyId: 'alias/pgsnap',
      StorageClass: 'STANDARD_IA',
    });
  });

  it('keeps catalog documents in the default storage class, still encrypted', async () => {
    await store('s3://backups/pg?sse=AES256&storage-class=STANDARD_IA').put(
      'db/backups/x/manifest.json',
      Buffer.from('{}'),
    );
    const input = s3.commandCalls(PutObjectCommand)[0]!.args[0].input;
    expect(input).toMatchObject({ ServerSideEncryption: 'AES256' });
    expect(input.StorageClass).toBeUndefined();
    expect(input.IfNoneMatch).toBeUndefined();
  });

  it('takes a refused conditional write as "already there", never as an overwrite', async () => {
    s3.on(PutObjectCommand).rejects(
      Object.assign(new Error('PreconditionFailed'), {
        name: 'PreconditionFailed',
        $metadata: { httpStatusCode: 412 },
      }),
    );
    expect(await store('s3://backups/pg').putIfAbsent('db/wal/x.zst', Buffer.from('x'))).toBe('exists');
  });

  it('names access problems and outages apart, with what to do', async () => {
    s3.on(HeadObjectCommand).rejects(
      Object.assign(new Error('Access Denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }),
    );
    await expect(store('s3://backups/pg').exists('db/cluster.json')).rejects.toMatchObject({
      name: 'RepositoryAccessError',
      message: expect.stringMatching(
        /s3:\/\/backups\/pg\/db\/cluster\.json failed: AccessDenied \(HTTP 403\); check the AWS credentials/,
      ),
    });
    s3.on(HeadObjectCommand).rejects(
      Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
    );
    await expect(store('s3://backups/pg').exists('db/cluster.json')).rejects.toMatchObject({
      name: 'RepositoryUnreachableError',
    });
  });
});
