/**
 * What the target host answers the restore state machine (SendTaskSuccess
 * output of `pgsnap restore --restore-id`): where it mounted each volume, the
 * timings of its phases, what each check said, and how far recovery got.
 */
import * as z from '../zod.ts';

const timestamp = z.iso.datetime();

export const checkOutcomeSchema = z.strictObject({
  ok: z.boolean(),
  /** What the check found, in words (`0 checksum failures`, `pg_amcheck: 2 corruptions in orders`). */
  detail: z.string(),
});
export type CheckOutcome = z.infer<typeof checkOutcomeSchema>;

export const hostReportSchema = z.strictObject({
  mounts: z.array(
    z.strictObject({
      volumeId: z.string(),
      device: z.string(),
      mountPoint: z.string(),
      options: z.optional(z.string()),
    }),
  ),
  pgdata: z.string(),
  timings: z.strictObject({
    mountedAt: timestamp,
    preparedAt: z.optional(timestamp),
    startedAt: z.optional(timestamp),
    consistentAt: z.optional(timestamp),
    /** Recovery reached the target (or the end of the WAL) and the server promoted (restore, drill). */
    targetReachedAt: z.optional(timestamp),
    acceptingAt: z.optional(timestamp),
  }),
  checks: z.strictObject({
    consistency: checkOutcomeSchema,
    amcheck: z.optional(checkOutcomeSchema),
    checksums: z.optional(checkOutcomeSchema),
    sql: z.optional(checkOutcomeSchema),
  }),
  /** pg_last_xact_replay_timestamp(): the last commit recovery replayed. */
  lastReplayedCommit: z.optional(timestamp),
  replayLsn: z.optional(z.string()),
  /** Every check passed. */
  ok: z.boolean(),
});
export type HostReport = z.infer<typeof hostReportSchema>;
