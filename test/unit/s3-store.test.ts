/**
 * What the S3 backend asks of S3 that a local s3rver cannot show: encryption
 * and storage-class headers, and conditional writes (s3rver ignores them).
 */

import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { parseRepositoryUrl, type S3Location } from '#domain/repository/location';
import { Repository } from '#domain/repository/repository';
import { S3Store } from '#domain/repository/s3-store';
import { encodeWalObject } from '#domain/repository/wal-object';

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

describe('a WAL fetch from a versioned bucket', () => {
  const name = '000000010000000000000003';
  const key = `pg/orders-db/wal/${name}.zst`;
  const pin = { walCompression: 'zstd' } as never;
  const segment = Buffer.alloc(16 * 1024 * 1024, 7);

  beforeEach(async () => {
    s3.reset();
    const object = await encodeWalObject(name, segment);
    // The part of a response body the store reads.
    s3.on(GetObjectCommand).resolves({
      Body: { transformToByteArray: async () => new Uint8Array(object) },
    } as never);
  });

  it('returns a WAL file written once', async () => {
    s3.on(ListObjectVersionsCommand).resolves({
      Versions: [
        { Key: key, VersionId: 'v1', IsLatest: true },
        { Key: `${key}.other`, VersionId: 'x' },
      ],
    });
    const repository = new Repository(store('s3://backups/pg'), 'orders-db');
    expect((await repository.fetchWal(pin, name))?.equals(segment)).toBe(true);
    expect(s3.commandCalls(ListObjectVersionsCommand)[0]!.args[0].input).toMatchObject({
      Bucket: 'backups',
      Prefix: key,
    });
  });

  it('refuses a WAL key with a second version, whatever the sha256 in its header says', async () => {
    s3.on(ListObjectVersionsCommand).resolves({
      Versions: [
        { Key: key, VersionId: 'v2', IsLatest: true },
        { Key: key, VersionId: 'v1', IsLatest: false },
      ],
    });
    const repository = new Repository(store('s3://backups/pg'), 'orders-db');
    await expect(repository.fetchWal(pin, name)).rejects.toMatchObject({
      name: 'CorruptObjectError',
      message: expect.stringContaining('has 2 versions'),
    });
  });

  it('refuses a WAL key that was deleted and written again', async () => {
    s3.on(ListObjectVersionsCommand).resolves({
      Versions: [{ Key: key, VersionId: 'v2', IsLatest: true }],
      DeleteMarkers: [{ Key: key, VersionId: 'd1', IsLatest: false }],
    });
    const repository = new Repository(store('s3://backups/pg'), 'orders-db');
    await expect(repository.fetchWal(pin, name)).rejects.toMatchObject({ name: 'CorruptObjectError' });
  });
});

describe('a listing that fails', () => {
  beforeEach(() => s3.reset());

  it('names the missing bucket and the prefix listed, not the prefix as a bad key', async () => {
    s3.on(ListObjectsV2Command).rejects(
      Object.assign(new Error('The specified bucket does not exist'), {
        name: 'NoSuchBucket',
        $metadata: { httpStatusCode: 404 },
      }),
    );
    await expect(store('s3://backups/pg').list('db/backups/')).rejects.toThrow(
      'ListObjectsV2 s3://backups/pg/db/backups/ failed: NoSuchBucket (HTTP 404); create the bucket or fix the repository URL',
    );
  });

  it('says a refused connection is an unreachable repository', async () => {
    s3.on(ListObjectsV2Command).rejects(
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { name: 'Error', code: 'ECONNREFUSED' }),
    );
    const listing = store('s3://backups').list('db/backups/');
    await expect(listing).rejects.toThrow(
      /^ListObjectsV2 s3:\/\/backups\/db\/backups\/ failed: ECONNREFUSED: connect ECONNREFUSED .*the repository is unreachable/,
    );
    await expect(listing).rejects.toMatchObject({ name: 'RepositoryUnreachableError' });
  });
});
