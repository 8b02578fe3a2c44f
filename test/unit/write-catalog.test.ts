/**
 * write-catalog, the custom resource behind the stack's catalog: the body it is given gzipped in base64, with
 * deploy-time values as markers, is stored as the catalog's JSON with those values put back, and
 * CloudFormation is answered; a body that is no catalog is refused and answered FAILED.
 */
import { gzipSync } from 'node:zlib';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { writeCatalogHandler } from '../../functions/write-catalog.ts';

const catalog = {
  schemaVersion: 1,
  clusters: [
    {
      name: 'orders-db',
      instanceId: 'i-0123456789abcdef0',
      volumeIds: [],
      fastCheckpoint: false,
      maxBackupMinutes: 60,
      repository: 's3://{{pgsnap:0}}/pgsnap/',
    },
  ],
};

function request(body: string) {
  return {
    RequestType: 'Create',
    ResponseURL: 'https://cloudformation-custom-resource-response.example/answer',
    StackId: 'arn:aws:cloudformation:eu-west-1:123456789012:stack/pgsnap-prod/1',
    RequestId: 'request-1',
    LogicalResourceId: 'CatalogObject',
    ResourceProperties: {
      Bucket: 'pgsnap-prod-repository',
      Key: '_pgsnap/catalog-0123456789abcdef.json',
      Body: gzipSync(body).toString('base64'),
      Substitutions: { '{{pgsnap:0}}': 'pgsnap-prod-repository' },
    },
  };
}

describe('write-catalog', () => {
  const s3 = mockClient(S3Client);
  const answers: Array<{ Status: string; Reason: string }> = [];
  beforeEach(() => {
    s3.reset();
    answers.length = 0;
    vi.stubGlobal('fetch', async (_url: string, init: { body: string }) => {
      answers.push(JSON.parse(init.body));
      return new Response(null, { status: 200 });
    });
  });
  afterEach(() => vi.unstubAllGlobals());

  test('stores the unzipped catalog with the bucket name put back, and answers SUCCESS', async () => {
    s3.on(PutObjectCommand).resolves({});
    const outcome = await writeCatalogHandler(new S3Client({ region: 'eu-west-1' }))(
      request(JSON.stringify(catalog)),
    );
    expect(outcome.physicalId).toBe('s3://pgsnap-prod-repository/_pgsnap/catalog-0123456789abcdef.json');
    const put = s3.commandCalls(PutObjectCommand)[0]!.args[0].input;
    expect(put.Key).toBe('_pgsnap/catalog-0123456789abcdef.json');
    expect(JSON.parse(put.Body as string).clusters[0].repository).toBe('s3://pgsnap-prod-repository/pgsnap/');
    expect(answers.map((a) => a.Status)).toEqual(['SUCCESS']);
  });

  test('a body that is no catalog is refused, answered FAILED, and nothing is stored', async () => {
    await expect(
      writeCatalogHandler(new S3Client({ region: 'eu-west-1' }))(request('{"schemaVersion":2}')),
    ).rejects.toThrow(/cluster catalog/);
    expect(s3.commandCalls(PutObjectCommand)).toHaveLength(0);
    expect(answers.map((a) => a.Status)).toEqual(['FAILED']);
  });
});
