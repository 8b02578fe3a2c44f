/** What `begin` asks for: which cluster's state, and the backup to start. */
import * as z from '#domain/zod';

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

/** SessionConfig as the holder reads it from its argv. */
export const sessionConfigSchema = z.strictObject({
  stateRoot: z.string(),
  key: z.string(),
  backupId: z.string(),
  label: z.string(),
  fast: z.boolean(),
  maxDurationMs: z.number(),
  ownerPid: z.optional(z.number()),
}) satisfies z.ZodMiniType<SessionConfig>;
