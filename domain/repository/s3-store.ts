/**
 * The `s3://` backend. PutObject is atomic (readers see the old object or the
 * new one, never a part), so no temporary names are needed. Credentials come
 * from the AWS SDK's default chain unless the caller gives a provider.
 */

import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  type ListObjectVersionsCommandOutput,
  PutObjectCommand,
  type PutObjectCommandInput,
  paginateListObjectsV2,
  S3Client,
  type S3ServiceException,
} from '@aws-sdk/client-s3';
import { sdkRetry } from '../aws-retry.ts';
import {
  type AwsTimeouts,
  awsClientTimeouts,
  defaultAwsTimeouts,
  isAwsTimeout,
  seconds,
} from '../aws-timeouts.ts';
import { RepositoryAccessError, RepositoryTimeoutError, RepositoryUnreachableError } from './errors.ts';
import type { S3Location } from './location.ts';
import { checkKey, type ObjectStore, type PutOptions } from './store.ts';

export interface S3StoreOptions {
  /** For tests and tools that bring their own client (e.g. one with a mocked transport). */
  client?: S3Client;
  /** How long one call may take; every attempt gets the limits again. */
  timeouts?: AwsTimeouts;
  /** A credential provider instead of the SDK's default chain (PGSNAP_CREDENTIALS_URL on the agent). */
  credentials?: () => Promise<{
    accessKeyId: string;
    secretAccessKey: string;
    sessionToken?: string;
    expiration?: Date;
  }>;
}

const maxAttempts = 4;

export class S3Store implements ObjectStore {
  readonly url: string;
  private readonly client: S3Client;
  /** Some S3-compatible servers reject conditional writes; then existence is checked before writing only. */
  private conditionalWrites = true;
  private readonly timeouts: AwsTimeouts;

  constructor(
    private readonly location: S3Location,
    options: S3StoreOptions = {},
  ) {
    this.url = location.url;
    this.timeouts = options.timeouts ?? defaultAwsTimeouts;
    // The SDK warns on every start under Node 20 that later releases need 22: it would fill the server
    // log through archive_command and restore_command, once per file.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.client =
      options.client ??
      new S3Client({
        ...(location.region ? { region: location.region } : {}),
        ...(location.endpoint ? { endpoint: location.endpoint } : {}),
        forcePathStyle: location.forcePathStyle,
        ...(options.credentials ? { credentials: options.credentials } : {}),
        maxAttempts,
        retryMode: sdkRetry.retryMode,
        ...awsClientTimeouts(this.timeouts),
      });
  }

  private key(key: string): string {
    checkKey(key);
    return this.location.prefix ? `${this.location.prefix}/${key}` : key;
  }

  private where(key: string): string {
    return `s3://${this.location.bucket}/${this.key(key)}`;
  }

  /** The error for a failed call on `target` (an object's s3:// URL, or a listed prefix's), saying what to do. */
  private explain(error: unknown, action: string, target: string): Error {
    const e = error as S3ServiceException & { code?: string };
    const status = e.$metadata?.httpStatusCode;
    const detail = status ? `${e.name} (HTTP ${status})` : `${e.code ?? e.name}: ${e.message}`;
    const what = `${action} ${target} failed: ${detail}`;
    if (isAwsTimeout(error)) {
      const endpoint =
        this.location.endpoint ?? `S3${this.location.region ? ` in ${this.location.region}` : ''}`;
      return new RepositoryTimeoutError(
        `${action} ${target} timed out after ${seconds(this.timeouts.requestMs)} talking to ${endpoint} ` +
          `(connect limit ${seconds(this.timeouts.connectMs)}, ${maxAttempts} attempts); check the network path to ` +
          'the endpoint (security group, VPC endpoint or NAT route, proxy), or raise PGSNAP_AWS_REQUEST_TIMEOUT ' +
          'and PGSNAP_AWS_CONNECT_TIMEOUT (seconds) for a slow link',
        { cause: error },
      );
    }
    if (status === 403 || e.name === 'AccessDenied' || e.name === 'InvalidAccessKeyId') {
      return new RepositoryAccessError(
        `${what}; check the AWS credentials of the user running pgsnap and the bucket policy ` +
          '(s3:GetObject, s3:PutObject, s3:ListBucket on the prefix)',
        { cause: error },
      );
    }
    if (e.name === 'NoSuchBucket') {
      return new RepositoryAccessError(`${what}; create the bucket or fix the repository URL`, {
        cause: error,
      });
    }
    if (status !== undefined && status >= 400 && status < 500) {
      return new RepositoryAccessError(what, { cause: error });
    }
    return new RepositoryUnreachableError(
      `${what}; the repository is unreachable (network, endpoint or S3 outage), try again later`,
      { cause: error },
    );
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      const answer = await this.client.send(
        new GetObjectCommand({ Bucket: this.location.bucket, Key: this.key(key) }),
      );
      const bytes = await answer.Body!.transformToByteArray();
      // A view of the same memory: Buffer.from(bytes) would copy a whole WAL object once more.
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (error) {
      if ((error as Error).name === 'NoSuchKey') return undefined;
      throw this.explain(error, 'GetObject', this.where(key));
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.location.bucket, Key: this.key(key) }));
      return true;
    } catch (error) {
      const e = error as S3ServiceException;
      if (e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404) {
        return false;
      }
      throw this.explain(error, 'HeadObject', this.where(key));
    }
  }

  async modifiedAt(key: string): Promise<Date | undefined> {
    try {
      const head = await this.client.send(
        new HeadObjectCommand({ Bucket: this.location.bucket, Key: this.key(key) }),
      );
      return head.LastModified;
    } catch (error) {
      const e = error as S3ServiceException;
      if (e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404) {
        return undefined;
      }
      throw this.explain(error, 'HeadObject', key);
    }
  }

  async putIfAbsent(key: string, body: Buffer, options: PutOptions = {}): Promise<'created' | 'exists'> {
    // If-None-Match makes the write itself conditional on S3; the check before it covers servers that ignore it.
    if (!options.checked && (await this.exists(key))) return 'exists';
    try {
      await this.send(key, body, options, this.conditionalWrites);
      return 'created';
    } catch (error) {
      const e = error as S3ServiceException;
      const status = e.$metadata?.httpStatusCode;
      if (status === 412 || e.name === 'PreconditionFailed') return 'exists';
      if (status === 409 || e.name === 'ConditionalRequestConflict') {
        return (await this.exists(key)) ? 'exists' : this.putIfAbsent(key, body, options);
      }
      if (status === 501 && this.conditionalWrites) {
        this.conditionalWrites = false;
        return this.putIfAbsent(key, body, options);
      }
      throw this.explain(error, 'PutObject', this.where(key));
    }
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<void> {
    try {
      await this.send(key, body, options, false);
    } catch (error) {
      throw this.explain(error, 'PutObject', this.where(key));
    }
  }

  private async send(key: string, body: Buffer, options: PutOptions, ifNoneMatch: boolean): Promise<void> {
    const input: PutObjectCommandInput = {
      Bucket: this.location.bucket,
      Key: this.key(key),
      Body: body,
      ContentLength: body.length,
      ...(ifNoneMatch ? { IfNoneMatch: '*' } : {}),
      ...(this.location.sse ? { ServerSideEncryption: this.location.sse } : {}),
      ...(this.location.kmsKeyId ? { SSEKMSKeyId: this.location.kmsKeyId } : {}),
      ...(options.bulk && this.location.storageClass ? { StorageClass: this.location.storageClass } : {}),
    };
    await this.client.send(new PutObjectCommand(input));
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.location.bucket, Key: this.key(key) }));
    } catch (error) {
      throw this.explain(error, 'DeleteObject', this.where(key));
    }
  }

  async versionCount(key: string): Promise<number | undefined> {
    const full = this.key(key);
    let count = 0;
    // A loop by hand: ListObjectVersions pages on two markers (key and version id), and the SDK ships no
    // paginator for it (@aws-sdk/client-s3 has paginateListObjectsV2, paginateListParts, … but not this one).
    let keyMarker: string | undefined;
    let versionMarker: string | undefined;
    do {
      let page: ListObjectVersionsCommandOutput;
      try {
        page = await this.client.send(
          new ListObjectVersionsCommand({
            Bucket: this.location.bucket,
            Prefix: full,
            ...(keyMarker ? { KeyMarker: keyMarker } : {}),
            ...(versionMarker ? { VersionIdMarker: versionMarker } : {}),
          }),
        );
      } catch (error) {
        // An S3-compatible server without versions (s3rver answers 405 MethodNotAllowed, others 501); AWS S3
        // always answers, versioned bucket or not, so nobody can make it skip the check.
        const status = (error as S3ServiceException).$metadata?.httpStatusCode;
        if (status === 501 || status === 405) return undefined;
        throw this.explain(error, 'ListObjectVersions', this.where(key));
      }
      // The prefix also matches longer keys (…0003.zst.tmp): only this key's versions count.
      count += [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])].filter((v) => v.Key === full).length;
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      versionMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
    } while (keyMarker);
    return count;
  }

  async list(prefix: string): Promise<string[]> {
    const full = this.location.prefix ? `${this.location.prefix}/${prefix}` : prefix;
    const names = new Set<string>();
    const pages = paginateListObjectsV2(
      { client: this.client },
      { Bucket: this.location.bucket, Prefix: full, Delimiter: '/' },
    );
    try {
      for await (const page of pages) {
        for (const p of page.CommonPrefixes ?? []) names.add(p.Prefix!.slice(full.length).replace(/\/$/, ''));
        for (const o of page.Contents ?? []) names.add(o.Key!.slice(full.length));
      }
    } catch (error) {
      // A prefix ends in `/`, which is not an object's key (checkKey refuses it): named as it is listed.
      throw this.explain(error, 'ListObjectsV2', `s3://${this.location.bucket}/${full}`);
    }
    names.delete('');
    return [...names].sort();
  }

  async *scan(prefix: string, startAfter?: string): AsyncIterable<string> {
    const full = this.location.prefix ? `${this.location.prefix}/${prefix}` : prefix;
    // StartAfter lets S3 begin the listing at the key, not at the prefix's first (ListObjectsV2).
    const pages = paginateListObjectsV2(
      { client: this.client },
      {
        Bucket: this.location.bucket,
        Prefix: full,
        Delimiter: '/',
        ...(startAfter ? { StartAfter: `${full}${startAfter}` } : {}),
      },
    );
    try {
      for await (const page of pages) {
        const names = [
          ...(page.CommonPrefixes ?? []).map((p) => p.Prefix!.slice(full.length).replace(/\/$/, '')),
          ...(page.Contents ?? []).map((o) => o.Key!.slice(full.length)),
        ];
        for (const name of names.sort()) if (name !== '') yield name;
      }
    } catch (error) {
      throw this.explain(error, 'ListObjectsV2', prefix || '.');
    }
  }

  close(): void {
    this.client.destroy();
  }
}
