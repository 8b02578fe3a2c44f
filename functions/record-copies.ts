import { STSClient } from '@aws-sdk/client-sts';
import { sdkRetry } from '#domain/aws-retry';
import { drTargetVariable } from '#domain/ebs/dr-target';
import { finishDrCopies } from '#domain/ebs/finish-dr-copies';
import { snapshotListSchema } from '#domain/ebs/snapshots';
import { backupIdSchema, clusterNameSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import { manifestCopySchema } from '#domain/repository/manifest';
import * as z from '#domain/zod';
import { openDrClients } from './commons/dr-clients.ts';
import { withDrRepositories } from './commons/dr-target.ts';
import { logged } from './commons/logged.ts';

const environmentSchema = z.object({ PGSNAP_DR: drTargetVariable });

const target = {
  cluster: clusterNameSchema,
  backupId: backupIdSchema,
  repository: z.string(),
  snapshotSet: z.object({
    snapshots: snapshotListSchema,
  }),
};
const copySet = z.object({
  account: z.string(),
  region: z.string(),
  copies: z.array(manifestCopySchema),
  startedAt: z.iso.datetime(),
});

const eventSchema = z.discriminatedUnion('outcome', [
  z.object({ ...target, outcome: z.literal('completed'), dr: copySet }),
  z.object({
    ...target,
    outcome: z.literal('failed'),
    dr: z.optional(copySet),
    /** What the state machine caught on the copy path. */
    copyError: z.object({ Error: z.string(), Cause: z.optional(z.string()) }),
  }),
]);

/** The handler with its STS client given (which assumes the DR role when the copy crosses accounts). */
export const recordCopiesHandler =
  (sts: STSClient) =>
  async (event: unknown): Promise<{ copies: z.infer<typeof manifestCopySchema>[] }> => {
    const { PGSNAP_DR: configured } = parseWith(
      environmentSchema,
      process.env,
      'the record-copies environment',
    );
    const PGSNAP_DR = await withDrRepositories(configured);
    const request = parseWith(eventSchema, event, 'the record-copies event');
    const clients = await openDrClients(sts, PGSNAP_DR, {
      sessionName: `pgsnap-record-${request.backupId}`,
      repository: request.repository,
      cluster: request.cluster,
    });
    const { source, session, repository } = clients;
    try {
      const common = {
        target: PGSNAP_DR,
        backupId: request.backupId,
        snapshots: request.snapshotSet.snapshots,
        ...(request.dr ? { copySet: request.dr } : {}),
      };
      return await finishDrCopies(
        { source, drEc2: session.ec2 },
        { source: repository },
        request.outcome === 'completed'
          ? { ...common, outcome: 'completed' }
          : {
              ...common,
              outcome: 'failed',
              reason: `${request.copyError.Error}: ${request.copyError.Cause ?? 'no cause given'}`,
            },
      );
    } finally {
      clients.close();
    }
  };

export const handler = logged('record-copies', recordCopiesHandler(new STSClient(sdkRetry)));
