/** Polling for a condition that a server or a helper process reaches in its own time. */
import type { Cluster } from './cluster.ts';

export interface WaitOptions {
  /** Its server log's tail goes into the timeout's message. */
  cluster?: Cluster;
  timeoutMs?: number;
  intervalMs?: number;
}

/**
 * Calls `probe` until it returns something other than undefined, and returns
 * that; throws "timed out waiting for <what>" after `timeoutMs` (`what` read
 * then, when it is a function, so that it can tell the last state seen).
 */
export async function waitFor<T>(
  what: string | (() => string),
  probe: () => Promise<T | undefined>,
  { cluster, timeoutMs = 90_000, intervalMs = 100 }: WaitOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${typeof what === 'string' ? what : what()}${cluster ? `; server log:\n${cluster.log().slice(-4000)}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
