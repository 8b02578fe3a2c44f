/**
 * A host found by tags uses its repository with the credentials the stack's
 * vendor gives it (PGSNAP_CREDENTIALS_URL): the agent signs its request to
 * the vendor with the instance's own credentials, and puts to S3 with the
 * vended ones. Here the vendor is a stand-in on 127.0.0.1 that checks the
 * SigV4 signature as Lambda would, and vends the local S3 server's keys; the
 * "instance" keys are ones the S3 server refuses.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { open } from '../../agent/host/repository.ts';
import {
  credentialsFromSettings,
  refreshMarginMs,
  vendedCredentials,
} from '../../agent/host/vended-credentials.ts';
import { LocalS3, s3Credentials } from '../support/s3.ts';

const instanceCredentials = { accessKeyId: 'ASIAINSTANCEPROFILE', secretAccessKey: 'instance-secret' };
const hour = 3_600_000;

/** What the stand-in vendor saw: each request, and whether its signature was the instance's. */
interface Seen {
  signedByInstance: boolean;
  authorization: string;
}

/** Recomputes the request's SigV4 signature with the instance's secret, as Lambda checks an AWS_IAM URL. */
async function signedByInstance(request: IncomingMessage, port: number): Promise<boolean> {
  const date = request.headers['x-amz-date'];
  const authorization = request.headers.authorization ?? '';
  if (typeof date !== 'string' || !authorization.includes(`Credential=${instanceCredentials.accessKeyId}/`)) {
    return false;
  }
  const { createHash, createHmac } = await import('node:crypto');
  class Sha256 {
    private readonly h;
    constructor(secret?: string | Uint8Array) {
      this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', secret);
    }
    update(data: string | Uint8Array) {
      this.h.update(data);
    }
    async digest() {
      return new Uint8Array(this.h.digest());
    }
    reset() {}
  }
  const signer = new SignatureV4({
    service: 'lambda',
    region: 'eu-west-1',
    credentials: instanceCredentials,
    sha256: Sha256 as never,
  });
  const url = new URL(request.url ?? '/', `http://127.0.0.1:${port}`);
  const signed = await signer.sign(
    {
      method: request.method ?? 'GET',
      protocol: 'http:',
      hostname: '127.0.0.1',
      port,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: { host: `127.0.0.1:${port}` },
    },
    {
      signingDate: new Date(
        date.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'),
      ),
    },
  );
  return signed.headers.authorization === authorization;
}

describe('credentials vended to a host found by tags', () => {
  let s3: LocalS3;
  let vendor: Server;
  let port: number;
  const seen: Seen[] = [];
  /** The expiry the vendor gives next. */
  let expiresAt = Date.now() + hour;
  let refuse: string | undefined;

  beforeAll(async () => {
    s3 = await LocalS3.start();
    vendor = createServer((request, response) => {
      void signedByInstance(request, port).then((signed) => {
        seen.push({ signedByInstance: signed, authorization: request.headers.authorization ?? '' });
        if (!signed || refuse) {
          response.writeHead(403, { 'content-type': 'application/json' });
          response.end(
            JSON.stringify({ error: 'CredentialsRefusedError', message: refuse ?? 'bad signature' }),
          );
          return;
        }
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(
          JSON.stringify({
            Version: 1,
            AccessKeyId: s3Credentials.accessKeyId,
            SecretAccessKey: s3Credentials.secretAccessKey,
            Token: 'vended-session-token',
            Expiration: new Date(expiresAt).toISOString(),
            cluster: 'inventory-db',
          }),
        );
      });
    });
    vendor.listen(0, '127.0.0.1');
    await once(vendor, 'listening');
    port = (vendor.address() as { port: number }).port;
  });

  afterAll(async () => {
    vendor?.close();
    await s3?.destroy();
  });

  const vendorUrl = () => `http://127.0.0.1:${port}/`;
  const clientWith = (credentials: S3Client['config']['credentials'] | typeof s3Credentials) =>
    new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials });

  test("the instance's own keys cannot write to the repository (so a write below proves the vended ones)", async () => {
    const client = clientWith(instanceCredentials);
    await expect(
      client.send(new PutObjectCommand({ Bucket: 'pgsnap-test', Key: 'repo/x', Body: 'x' })),
    ).rejects.toThrow();
    client.destroy();
  });

  test('the agent opens the repository with PGSNAP_CREDENTIALS_URL: signed request to the vendor, vended keys to S3', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      PGSNAP_CREDENTIALS_URL: vendorUrl(),
      AWS_ACCESS_KEY_ID: instanceCredentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: instanceCredentials.secretAccessKey,
      AWS_REGION: 'eu-west-1',
    });
    delete process.env.AWS_SESSION_TOKEN;
    delete process.env.AWS_PROFILE;
    try {
      const repository = await open({ url: s3.url('fleet'), cluster: 'inventory-db' });
      await repository.store.put('inventory-db/wal/000000010000000000000001', Buffer.from('segment'));
    } finally {
      process.env = saved;
    }
    expect(seen.at(-1)?.signedByInstance).toBe(true);
    const reader = clientWith(s3Credentials);
    const stored = await reader.send(
      new GetObjectCommand({ Bucket: 'pgsnap-test', Key: 'fleet/inventory-db/wal/000000010000000000000001' }),
    );
    expect(await stored.Body?.transformToString()).toBe('segment');
    reader.destroy();
  });

  test('the vended credentials are kept until five minutes before they expire, then asked for again', async () => {
    let now = Date.now();
    expiresAt = now + hour;
    const provider = vendedCredentials(vendorUrl(), {
      signWith: async () => instanceCredentials,
      region: 'eu-west-1',
      now: () => now,
    });
    const before = seen.length;
    const first = await provider();
    expect(first.sessionToken).toBe('vended-session-token');
    now += 30 * 60_000;
    await provider();
    expect(seen.length - before).toBe(1);
    now = expiresAt - refreshMarginMs + 1_000;
    expiresAt = now + hour;
    const renewed = await provider();
    expect(seen.length - before).toBe(2);
    expect(renewed.expiration?.getTime()).toBe(expiresAt);
    expect(seen.slice(before).every((s) => s.signedByInstance)).toBe(true);
  });

  test("the vendor's refusal is the error, with its reason; the setting absent leaves the default chain", async () => {
    refuse = 'instance i-0123456789abcdef0 has no pgsnap:cluster tag';
    try {
      const provider = vendedCredentials(vendorUrl(), {
        signWith: async () => instanceCredentials,
        region: 'eu-west-1',
      });
      await expect(provider()).rejects.toThrow(
        /HTTP 403: instance i-0123456789abcdef0 has no pgsnap:cluster tag/,
      );
    } finally {
      refuse = undefined;
    }
    expect(credentialsFromSettings({})).toBeUndefined();
    expect(() => credentialsFromSettings({ PGSNAP_CREDENTIALS_URL: 'http://vendor.example.com/' })).toThrow(
      /must be an https:\/\/ URL/,
    );
  });
});
