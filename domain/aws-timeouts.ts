/**
 * How long one AWS call may take. The SDK's own default waits for ever on a
 * connection that was accepted and never answered (a blackholed endpoint, a
 * proxy that swallows the request), which left archive_command, begin and
 * doctor hanging for minutes with nothing counted as failed.
 */

export interface AwsTimeouts {
  /** TCP connect (and TLS handshake) to the endpoint, in ms. */
  connectMs: number;
  /** One attempt, request and response, in ms; each retry gets it again. */
  requestMs: number;
}

export const defaultAwsTimeouts: AwsTimeouts = { connectMs: 5_000, requestMs: 30_000 };

/** The attempts an agent client makes per call (the first and its retries). */
export const awsMaxAttempts = 4;

/** The SDK client settings for `timeouts`: a requestHandler shorthand every v3 client accepts. */
export function awsClientTimeouts(timeouts: AwsTimeouts = defaultAwsTimeouts) {
  return {
    requestHandler: {
      connectionTimeout: timeouts.connectMs,
      requestTimeout: timeouts.requestMs,
      // Without it, @smithy/node-http-handler 4.x only logs "a request has exceeded the configured
      // requestTimeout" and goes on waiting (seen against a blackholed endpoint).
      throwOnRequestTimeout: true,
      socketTimeout: timeouts.requestMs,
    },
  };
}

/**
 * The SDK's error for a call that ran past connectionTimeout or requestTimeout
 * (@smithy/node-http-handler names it TimeoutError; a socket the timeout
 * destroyed mid-request can surface as ECONNRESET "socket hang up").
 */
export function isAwsTimeout(error: unknown): boolean {
  const e = error as { name?: string; code?: string } | undefined;
  return e?.name === 'TimeoutError' || e?.code === 'ETIMEDOUT' || e?.name === 'RequestTimeout';
}

/** Seconds as an operator reads them: 30 s, 0.5 s. */
export function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}
