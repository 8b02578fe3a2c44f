/** The agent's limits on AWS calls: read from the environment once, and a silent endpoint named as such. */
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { RepositoryTimeoutError, RepositoryUnreachableError } from '#domain/repository/errors';
import { parseRepositoryUrl, type S3Location } from '#domain/repository/location';
import { S3Store } from '#domain/repository/s3-store';
import { awsClientConfig, awsTimeouts } from '../../agent/host/aws-timeouts.ts';

describe('AWS time limits', () => {
  it('default to 5 s to connect and 30 s per request, and take seconds (decimals too) from the environment', () => {
    expect(awsTimeouts({})).toEqual({ connectMs: 5_000, requestMs: 30_000 });
    expect(awsTimeouts({ PGSNAP_AWS_CONNECT_TIMEOUT: '0.5', PGSNAP_AWS_REQUEST_TIMEOUT: '12' })).toEqual({
      connectMs: 500,
      requestMs: 12_000,
    });
    expect(awsClientConfig({ PGSNAP_AWS_REQUEST_TIMEOUT: '2' })).toMatchObject({
      maxAttempts: 4,
      requestHandler: { connectionTimeout: 5_000, requestTimeout: 2_000, throwOnRequestTimeout: true },
    });
  });

  it('refuse a value that is not a number of seconds above 0, naming the variable', () => {
    expect(() => awsTimeouts({ PGSNAP_AWS_REQUEST_TIMEOUT: '30s' })).toThrow(
      /PGSNAP_AWS_REQUEST_TIMEOUT="30s" is not a number of seconds/,
    );
    expect(() => awsTimeouts({ PGSNAP_AWS_CONNECT_TIMEOUT: '0' })).toThrow(/PGSNAP_AWS_CONNECT_TIMEOUT/);
  });

  it('make a silent S3 endpoint a RepositoryTimeoutError that says the limit and the endpoint', async () => {
    const s3 = mockClient(S3Client);
    s3.on(GetObjectCommand).rejects(
      Object.assign(new Error('Connection timed out after 2000 ms'), { name: 'TimeoutError' }),
    );
    const location = parseRepositoryUrl(
      's3://pgsnap-test/pg?region=eu-west-1&endpoint=http://10.0.0.9:9000',
    ) as S3Location;
    const store = new S3Store(location, {
      client: new S3Client({ region: 'eu-west-1' }),
      timeouts: { connectMs: 1_000, requestMs: 2_000 },
    });
    const error = await store.get('orders/cluster.json').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RepositoryTimeoutError);
    expect(error).toBeInstanceOf(RepositoryUnreachableError);
    expect((error as Error).name).toBe('RepositoryTimeoutError');
    expect((error as Error).message).toMatch(
      /^GetObject s3:\/\/pgsnap-test\/pg\/orders\/cluster\.json timed out after 2 s talking to http:\/\/10\.0\.0\.9:9000/,
    );
    s3.restore();
  });
});
