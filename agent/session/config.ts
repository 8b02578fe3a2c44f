/** What `begin` asks for: which cluster's state, and the backup to start. */
export interface SessionConfig {
  stateRoot: string;
  key: string;
  backupId: string;
  label: string;
  fast: boolean;
  maxDurationMs: number;
  /** The `pgsnap run` the backup belongs to: once it is gone (kill -9 included), the session aborts. */
  ownerPid?: number;
}

/**
 * The longest maximum duration: Node.js keeps a timer's delay in a signed
 * 32-bit millisecond count, and a longer one is set to 1 ms (with only a
 * TimeoutOverflowWarning), which would expire the backup at once. About 24.8
 * days, far past any snapshot.
 */
export const maxDurationLimitMs = 2 ** 31 - 1;
