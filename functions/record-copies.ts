/**
 * Lambda for "Record the DR copies": how they ended, in the source and the
 * DR-side manifest; sharing and grants taken back; given-up copies deleted.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { KMSClient } from '@aws-sdk/client-kms';
import { STSClient } from '@aws-sdk/client-sts';
import { drTargetVariable, openDrSession } from '#domain/ebs/dr-target';
import { finishDrCopies } from '#domain/ebs/finish-dr-copies';
import { snapshotListSchema } from '#domain/ebs/snapshots';
import { backupIdSchema, clusterNameSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import { manifestCopySchema } from '#domain/repository/manifest';
import { openRepository } from '#domain/repository/open';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const sts = new STSClient({});

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

async function handle(event: unknown): Promise<{ copies: z.infer<typeof manifestCopySchema>[] }> {
  const { PGSNAP_DR } = parseWith(environmentSchema, process.env, 'the record-copies environment');
  const request = parseWith(eventSchema, event, 'the record-copies event');
  const source = {
    ec2: new EC2Client({ region: PGSNAP_DR.sourceRegion }),
    kms: new KMSClient({ region: PGSNAP_DR.sourceRegion }),
  };
  const session = await openDrSession(sts, PGSNAP_DR, { sessionName: `pgsnap-record-${request.backupId}` });
  const repository = await openRepository(request.repository, request.cluster);
  try {
    const dr = await session.openRepository(request.cluster);
    const common = {
      target: PGSNAP_DR,
      backupId: request.backupId,
      snapshots: request.snapshotSet.snapshots,
      ...(request.dr ? { copySet: request.dr } : {}),
    };
    return await finishDrCopies(
      { source, drEc2: session.ec2 },
      { source: repository, dr },
      request.outcome === 'completed'
        ? { ...common, outcome: 'completed' }
        : {
            ...common,
            outcome: 'failed',
            reason: `${request.copyError.Error}: ${request.copyError.Cause ?? 'no cause given'}`,
          },
    );
  } finally {
    repository.close();
    session.close();
    source.ec2.destroy();
    source.kms.destroy();
  }
}

export const handler = logged('record-copies', handle);
