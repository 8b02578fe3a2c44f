import { describe, expect, it } from 'vitest';
import { parseRepositoryUrl } from '#domain/repository/location';

describe('repository URLs', () => {
  it('reads a directory from a file URL', () => {
    expect(parseRepositoryUrl('file:///var/lib/pgsnap/')).toEqual({
      kind: 'file',
      root: '/var/lib/pgsnap',
      url: 'file:///var/lib/pgsnap',
    });
  });

  it('reads bucket, prefix and S3 options from an s3 URL', () => {
    expect(
      parseRepositoryUrl(
        's3://backups-eu/pg/prod/?region=eu-west-1&endpoint=http%3A%2F%2F127.0.0.1%3A9000&path-style=true' +
          '&sse=aws:kms&kms-key-id=alias/pgsnap&storage-class=STANDARD_IA',
      ),
    ).toEqual({
      kind: 's3',
      bucket: 'backups-eu',
      prefix: 'pg/prod',
      region: 'eu-west-1',
      endpoint: 'http://127.0.0.1:9000',
      forcePathStyle: true,
      sse: 'aws:kms',
      kmsKeyId: 'alias/pgsnap',
      storageClass: 'STANDARD_IA',
      url: 's3://backups-eu/pg/prod',
    });
    expect(parseRepositoryUrl('s3://backups-eu')).toMatchObject({ bucket: 'backups-eu', prefix: '' });
  });

  it('refuses what it cannot use, saying what it expects', () => {
    expect(() => parseRepositoryUrl('/var/lib/pgsnap')).toThrow(/use s3:\/\/bucket\/prefix or file:\/\/\//);
    expect(() => parseRepositoryUrl('file://relative/dir')).toThrow(/absolute path/);
    expect(() => parseRepositoryUrl('s3://Bad_Bucket/x')).toThrow(/not an S3 bucket name/);
    expect(() => parseRepositoryUrl('s3://bucket/x?regoin=eu-west-1')).toThrow(/Known options: region/);
    expect(() => parseRepositoryUrl('s3://bucket/x?storage-class=GLACIER')).toThrow(/storage-class/);
    expect(() => parseRepositoryUrl('s3://bucket/x?kms-key-id=k')).toThrow(/kms-key-id needs sse=aws:kms/);
  });
});
