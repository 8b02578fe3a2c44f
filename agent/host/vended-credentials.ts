/**
 * The repository credentials of a host found by tags (PGSNAP_CREDENTIALS_URL):
 * its instance role may write nothing in S3, so the agent asks the stack's
 * credential vendor (functions/vend-credentials.ts) for its cluster's session,
 * signing the request to the function URL with the instance's own credentials
 * (SigV4, service `lambda`: a function URL with AWS_IAM auth takes requests
 * signed as for Lambda, Lambda Developer Guide, "Invoking Lambda function
 * URLs"). The answer is cached until five minutes before it expires, so an S3
 * call never starts with credentials about to lapse; without the setting the
 * SDK's default chain is used, as before.
 */
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { PreconditionError, UsageError } from '#domain/errors';
import { fromEnvironment, settingDescriptors } from './settings.ts';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

/** The SDK's credential provider shape (`AwsCredentialIdentityProvider`). */
export type CredentialsProvider = () => Promise<AwsCredentials>;

/** Renew this long before the vended session expires. */
export const refreshMarginMs = 5 * 60_000;

/** node:crypto as the Checksum the SigV4 signer takes (what @smithy/hash-node does). */
type SourceData = string | ArrayBuffer | ArrayBufferView;
const bytesOf = (data: SourceData): string | Uint8Array =>
  typeof data === 'string'
    ? data
    : ArrayBuffer.isView(data)
      ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : new Uint8Array(data);

class Sha256 {
  private readonly hash: Hash | Hmac;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytesOf(secret));
  }
  update(data: SourceData): void {
    this.hash.update(bytesOf(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {}
}

/** The Region of a function URL (`https://<id>.lambda-url.<region>.on.aws/`), else AWS_REGION. */
export function regionOfUrl(url: URL, env: NodeJS.ProcessEnv = process.env): string {
  const found = /\.lambda-url\.([a-z0-9-]+)\.on\.aws$/.exec(url.hostname)?.[1];
  return found ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1';
}

export interface VendedCredentialsOptions {
  /** The credentials that sign the request: the instance's own (the SDK's default chain) unless given. */
  signWith?: CredentialsProvider;
  /** The Region to sign for; by default the URL's (regionOfUrl). */
  region?: string;
  now?: () => number;
  fetch?: typeof fetch;
}

/** A provider of the credentials `url` vends, cached until `refreshMarginMs` before they expire. */
export function vendedCredentials(url: string, options: VendedCredentialsOptions = {}): CredentialsProvider {
  const target = new URL(url);
  const now = options.now ?? Date.now;
  const send = options.fetch ?? fetch;
  let cached: AwsCredentials | undefined;
  let pending: Promise<AwsCredentials> | undefined;

  const fetchOnce = async (): Promise<AwsCredentials> => {
    const signWith = options.signWith ?? (await defaultChain());
    const { SignatureV4 } = await import('@smithy/signature-v4');
    const signer = new SignatureV4({
      service: 'lambda',
      region: options.region ?? regionOfUrl(target),
      credentials: signWith,
      sha256: Sha256,
    });
    const query = Object.fromEntries(target.searchParams);
    const signed = await signer.sign({
      method: 'GET',
      protocol: target.protocol,
      hostname: target.hostname,
      ...(target.port ? { port: Number(target.port) } : {}),
      path: target.pathname,
      query,
      headers: { host: target.host },
    });
    let answer: Response;
    try {
      answer = await send(target, {
        method: 'GET',
        headers: signed.headers,
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      throw new PreconditionError(
        `the credential vendor ${target.origin} did not answer (${(error as Error).message}); check ` +
          'PGSNAP_CREDENTIALS_URL (the stack output CredentialsUrl) and the route from this host to it',
        { cause: error },
      );
    }
    const text = await answer.text();
    if (answer.status === 403) {
      const message = safeMessage(text);
      throw new PreconditionError(
        `the credential vendor ${target.origin} refused this host (HTTP 403${message ? `: ${message}` : ''}); ` +
          'launch it with the pgsnap-<environment>-discovered-host instance profile and tag it with its cluster',
      );
    }
    if (answer.status !== 200) {
      throw new PreconditionError(
        `the credential vendor ${target.origin} failed (HTTP ${answer.status}); try again, and if it keeps ` +
          "failing read the vend-credentials Lambda's log",
      );
    }
    const body = JSON.parse(text) as Record<string, unknown>;
    const expiration = new Date(String(body.Expiration));
    if (
      typeof body.AccessKeyId !== 'string' ||
      typeof body.SecretAccessKey !== 'string' ||
      typeof body.Token !== 'string' ||
      Number.isNaN(expiration.getTime())
    ) {
      throw new PreconditionError(`the credential vendor ${target.origin} answered without credentials`);
    }
    return {
      accessKeyId: body.AccessKeyId,
      secretAccessKey: body.SecretAccessKey,
      sessionToken: body.Token,
      expiration,
    };
  };

  return async () => {
    if (cached?.expiration && cached.expiration.getTime() - refreshMarginMs > now()) return cached;
    pending ??= fetchOnce().finally(() => {
      pending = undefined;
    });
    cached = await pending;
    return cached;
  };
}

/** The vendor's refusal message, never the body of a success (which holds a secret). */
function safeMessage(text: string): string | undefined {
  try {
    const message = (JSON.parse(text) as { message?: unknown }).message;
    return typeof message === 'string' ? message.slice(0, 500) : undefined;
  } catch {
    return undefined;
  }
}

async function defaultChain(): Promise<CredentialsProvider> {
  const { defaultProvider } = await import('@aws-sdk/credential-provider-node');
  return defaultProvider();
}

/** The provider PGSNAP_CREDENTIALS_URL asks for, or undefined (the SDK's default chain) when it is unset. */
export function credentialsFromSettings(
  env: NodeJS.ProcessEnv = process.env,
): CredentialsProvider | undefined {
  const text = fromEnvironment('credentialsUrl', env);
  if (text === undefined) return undefined;
  const variable = settingDescriptors.credentialsUrl.env;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(
      `${variable}=${JSON.stringify(text)} is not a URL; give the stack output CredentialsUrl`,
    );
  }
  // Plain HTTP only to this machine (the tests' stand-in): anything else would send a signed request in clear.
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && url.hostname === '127.0.0.1')) {
    throw new UsageError(
      `${variable} must be an https:// URL (the stack output CredentialsUrl), not ${url.origin}`,
    );
  }
  return vendedCredentials(url.href);
}
