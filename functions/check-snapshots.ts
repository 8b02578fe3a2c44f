/** Lambda for "Check whether the snapshots are completed": one poll, and the wait before the next. */
import { EC2Client } from '@aws-sdk/client-ec2';
import { sdkRetry } from '#domain/aws-retry';
import { checkSnapshotSet, type SnapshotProgress } from '#domain/ebs/check-snapshot-set';
import { snapshotListSchema } from '#domain/ebs/snapshots';
import { parseWith } from '#domain/parse';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const environmentSchema = z.object({
  PGSNAP_FIRST_POLL_SECONDS: z.pipe(z.coerce.number(), z.int().check(z.gte(1))),
  PGSNAP_MAX_POLL_SECONDS: z.pipe(z.coerce.number(), z.int().check(z.gte(1))),
  PGSNAP_SNAPSHOT_HOURS: z.pipe(z.coerce.number(), z.int().check(z.gte(1))),
});

const eventSchema = z.object({
  snapshotSet: z.object({
    snapshots: snapshotListSchema,
    createdAt: z.iso.datetime(),
  }),
  poll: z._default(
    z.object({
      attempt: z.int().check(z.gte(0)),
      // What the last poll saw, for the snapshots' current rate (domain/ebs/poll-wait.ts).
      at: z.optional(z.iso.datetime()),
      seen: z.optional(z.array(z.object({ snapshotId: z.string(), percent: z.number() }))),
    }),
    { attempt: 0 },
  ),
});

/** The handler with its EC2 client given: AWS's in Lambda, the local volumes' in `pgsnap demo`. */
export const checkSnapshotsHandler =
  (ec2: EC2Client) =>
  async (event: unknown): Promise<SnapshotProgress> => {
    const env = parseWith(environmentSchema, process.env, 'the check-snapshots environment');
    const request = parseWith(eventSchema, event, 'the check-snapshots event');
    return checkSnapshotSet(ec2, {
      set: request.snapshotSet,
      attempt: request.poll.attempt,
      ...(request.poll.at && request.poll.seen
        ? { last: { at: request.poll.at, seen: request.poll.seen } }
        : {}),
      settings: {
        firstPollSeconds: env.PGSNAP_FIRST_POLL_SECONDS,
        maxPollSeconds: env.PGSNAP_MAX_POLL_SECONDS,
        snapshotHours: env.PGSNAP_SNAPSHOT_HOURS,
      },
    });
  };

export const handler = logged('check-snapshots', checkSnapshotsHandler(new EC2Client(sdkRetry)));
