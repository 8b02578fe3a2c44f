/** Where the agent keeps its local state by default; a module of its own, light enough for wal-push and wal-fetch. */
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * PGSNAP_STATE_DIR; /run/pgsnap for root; $XDG_RUNTIME_DIR/pgsnap (the
 * user's own, mode 0700 by the XDG spec); otherwise ~/.pgsnap — for
 * `postgres` its home, /var/lib/postgresql or /var/lib/pgsql, above the data
 * directories. Never a shared /tmp: a name there such as /tmp/pgsnap-<uid>
 * can be made first by any local user (privateDirectory refuses one that is
 * not ours and private, wherever it is).
 */
export function defaultStateRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PGSNAP_STATE_DIR) return env.PGSNAP_STATE_DIR;
  if (process.getuid?.() === 0) return '/run/pgsnap';
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'pgsnap');
  return join(env.HOME || homedir(), '.pgsnap');
}
