/** Where the agent keeps its local state by default; a module of its own, light enough for wal-push and wal-fetch. */
import { join } from 'node:path';

export function defaultStateRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PGSNAP_STATE_DIR) return env.PGSNAP_STATE_DIR;
  if (process.getuid?.() === 0) return '/run/pgsnap';
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'pgsnap');
  return `/tmp/pgsnap-${process.getuid?.() ?? 'user'}`;
}
