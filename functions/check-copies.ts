/** Lambda for "Check whether the DR copies are completed": one poll, and the wait before the next. */
import { STSClient } from '@aws-sdk/client-sts';
import { sdkRetry } from '#domain/aws-retry';
import { type CopyProgress, checkDrCopies } from '#domain/ebs/dr-copies';
import { drTargetVariable, openDrSession } from '#domain/ebs/dr-target';
import { backupIdSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import { manifestCopySchema } from '#domain/repository/manifest';
import * as z from '#domain/zod';
import { withDrRepositories } from './commons/dr-target.ts';
import { logged } from './commons/logged.ts';

const environmentSchema = z.object({
  PGSNAP_DR: drTargetVariable,
  PGSNAP_FIRST_POLL_SECONDS: z.pipe(z.coerce.number(), z.int().check(z.gte(1))),
  PGSNAP_MAX_POLL_SECONDS: z.pipe(z.coerce.number(), z.int().check(z.gte(1))),
  PGSNAP_COPY_HOURS: z.pipe(z.coerce.number(), z.int().check(z.gte(1))),
});

const eventSchema = z.object({
  backupId: backupIdSchema,
  dr: z.object({
    account: z.string(),
    region: z.string(),
    copies: z.array(manifestCopySchema).check(z.minLength(1)),
    startedAt: z.iso.datetime(),
  }),
  copyPoll: z._default(
    z.object({
      attempt: z.int().check(z.gte(0)),
      // What the last poll saw, for the copies' current rate (domain/ebs/poll-wait.ts).
      at: z.optional(z.iso.datetime()),
      seen: z.optional(z.array(z.object({ snapshotId: z.string(), percent: z.number() }))),
    }),
    { attempt: 0 },
  ),
});

/** The handler with its STS client given (which assumes the DR role when the copy crosses accounts). */
export const checkCopiesHandler =
  (sts: STSClient) =>
  async (event: unknown): Promise<CopyProgress> => {
    const env = parseWith(environmentSchema, process.env, 'the check-copies environment');
    const request = parseWith(eventSchema, event, 'the check-copies event');
    const session = await openDrSession(sts, await withDrRepositories(env.PGSNAP_DR), {
      sessionName: `pgsnap-check-${request.backupId}`,
    });
    try {
      return await checkDrCopies(session.ec2, {
        copySet: request.dr,
        attempt: request.copyPoll.attempt,
        ...(request.copyPoll.at && request.copyPoll.seen
          ? { last: { at: request.copyPoll.at, seen: request.copyPoll.seen } }
          : {}),
        settings: {
          firstPollSeconds: env.PGSNAP_FIRST_POLL_SECONDS,
          maxPollSeconds: env.PGSNAP_MAX_POLL_SECONDS,
          snapshotHours: env.PGSNAP_COPY_HOURS,
        },
      });
    } finally {
      session.close();
    }
  };

export const handler = logged('check-copies', checkCopiesHandler(new STSClient(sdkRetry)));
