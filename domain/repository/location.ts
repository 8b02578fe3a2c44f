/**
 * Where a repository lives, from one URL: `file:///dir` or
 * `s3://bucket/prefix?region=…&endpoint=…`. One string carries everything, so
 * that archive_command and restore_command, which PostgreSQL runs without the
 * operator's environment, need nothing else.
 */
import { isAbsolute, normalize } from 'node:path';
import { UsageError } from '../errors.ts';
import * as z from '../zod.ts';

/** Storage classes whose objects can be read at once; Glacier classes would make WAL unfetchable. */
export const storageClasses = [
  'STANDARD',
  'STANDARD_IA',
  'ONEZONE_IA',
  'INTELLIGENT_TIERING',
  'GLACIER_IR',
  'REDUCED_REDUNDANCY',
] as const;

/** The options an `s3://` URL takes as query parameters, with what each one does (README table). */
export const s3OptionDocs = {
  region: 'AWS region of the bucket (default: the AWS SDK default chain, e.g. AWS_REGION)',
  endpoint: 'URL of an S3-compatible server, e.g. http://127.0.0.1:9000',
  'path-style': '`true` to address the bucket in the path (most S3-compatible servers)',
  sse: 'server-side encryption: `AES256` (SSE-S3) or `aws:kms` (SSE-KMS)',
  'kms-key-id': 'KMS key id or ARN for `sse=aws:kms` (default: the AWS managed key)',
  'storage-class': `storage class of WAL and artifacts: ${storageClasses.join(', ')}`,
} as const;

const s3Options = z
  .strictObject({
    region: z.optional(z.string().check(z.minLength(1))),
    endpoint: z.optional(z.url({ protocol: /^https?$/ })),
    'path-style': z.optional(z.enum(['true', 'false'])),
    sse: z.optional(z.enum(['AES256', 'aws:kms'])),
    'kms-key-id': z.optional(z.string().check(z.minLength(1))),
    'storage-class': z.optional(z.enum(storageClasses)),
  })
  .check(
    z.refine((o) => o['kms-key-id'] === undefined || o.sse === 'aws:kms', {
      message: 'kms-key-id needs sse=aws:kms',
    }),
  );

export interface FileLocation {
  kind: 'file';
  /** Absolute directory that holds the clusters. */
  root: string;
  url: string;
}

export interface S3Location {
  kind: 's3';
  bucket: string;
  /** Key prefix without leading or trailing slash; '' for the bucket root. */
  prefix: string;
  region?: string;
  endpoint?: string;
  forcePathStyle: boolean;
  sse?: 'AES256' | 'aws:kms';
  kmsKeyId?: string;
  storageClass?: (typeof storageClasses)[number];
  /** The URL without its query, for messages. */
  url: string;
}

export type RepositoryLocation = FileLocation | S3Location;

const example = 'use s3://bucket/prefix or file:///absolute/dir';

export function parseRepositoryUrl(text: string): RepositoryLocation {
  if (text.startsWith('file://')) return parseFileUrl(text);
  if (text.startsWith('s3://')) return parseS3Url(text);
  throw new UsageError(`repository ${JSON.stringify(text)} is not a repository URL: ${example}`);
}

function parseFileUrl(text: string): FileLocation {
  const path = decodeURIComponent(text.slice('file://'.length));
  if (!isAbsolute(path) || text.includes('?')) {
    throw new UsageError(
      `repository ${JSON.stringify(text)}: a file repository is file:// followed by an absolute path, ` +
        'e.g. file:///var/lib/pgsnap (three slashes)',
    );
  }
  const root = normalize(path).replace(/(.)\/$/, '$1');
  return { kind: 'file', root, url: `file://${root}` };
}

function parseS3Url(text: string): S3Location {
  const [address = '', query = ''] = text.slice('s3://'.length).split(/\?(.*)/s);
  const slash = address.indexOf('/');
  const bucket = slash < 0 ? address : address.slice(0, slash);
  const prefix = slash < 0 ? '' : address.slice(slash + 1).replace(/^\/+|\/+$/g, '');
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new UsageError(
      `repository ${JSON.stringify(text)}: ${JSON.stringify(bucket)} is not an S3 bucket name ` +
        '(3-63 lower-case letters, digits, dots and hyphens)',
    );
  }
  const params = new URLSearchParams(query);
  const raw: Record<string, string> = {};
  for (const [key, value] of params) raw[key] = value;
  const parsed = s3Options.safeParse(raw);
  if (!parsed.success) {
    throw new UsageError(
      `repository ${JSON.stringify(text)}: ${z.prettifyError(parsed.error).replace(/\n/g, '; ')}. ` +
        `Known options: ${Object.keys(s3OptionDocs).join(', ')}`,
    );
  }
  const o = parsed.data;
  return {
    kind: 's3',
    bucket,
    prefix,
    forcePathStyle: o['path-style'] === 'true',
    ...(o.region ? { region: o.region } : {}),
    ...(o.endpoint ? { endpoint: o.endpoint } : {}),
    ...(o.sse ? { sse: o.sse } : {}),
    ...(o['kms-key-id'] ? { kmsKeyId: o['kms-key-id'] } : {}),
    ...(o['storage-class'] ? { storageClass: o['storage-class'] } : {}),
    url: `s3://${bucket}${prefix ? `/${prefix}` : ''}`,
  };
}
