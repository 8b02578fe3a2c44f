/** Lambda for "Check whether the snapshots are completed": one poll, and the wait before the next. */
import { EC2Client } from '@aws-sdk/client-ec2';
import { z } from 'zod';
import { parseWith } from '#domain/parse';
import { checkSnapshotSet, type SnapshotProgress } from '#domain/snapshots';

const environmentSchema = z.object({
  PGSNAP_FIRST_POLL_SECONDS: z.coerce.number().int().min(1),
  PGSNAP_MAX_POLL_SECONDS: z.coerce.number().int().min(1),
  PGSNAP_SNAPSHOT_HOURS: z.coerce.number().int().min(1),
});

const eventSchema = z.object({
  snapshotSet: z.object({
    snapshots: z.array(z.object({ snapshotId: z.string(), volumeId: z.string(), state: z.string() })).min(1),
    createdAt: z.iso.datetime(),
  }),
  poll: z.object({ attempt: z.int().min(0) }).default({ attempt: 0 }),
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
      settings: {
        firstPollSeconds: env.PGSNAP_FIRST_POLL_SECONDS,
        maxPollSeconds: env.PGSNAP_MAX_POLL_SECONDS,
        snapshotHours: env.PGSNAP_SNAPSHOT_HOURS,
      },
    });
  };

export const handler = checkSnapshotsHandler(new EC2Client({}));
