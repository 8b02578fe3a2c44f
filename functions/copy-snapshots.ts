import { STSClient } from '@aws-sdk/client-sts';
import { sdkRetry } from '#domain/aws-retry';
import { copyBackupToDrRepository, type DrCopySet, startDrCopies } from '#domain/ebs/dr-copies';
import { drTargetVariable } from '#domain/ebs/dr-target';
import { snapshotListSchema } from '#domain/ebs/snapshots';
import { backupIdSchema, clusterNameSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import * as z from '#domain/zod';
import { openDrClients } from './commons/dr-clients.ts';
import { withDrRepositories } from './commons/dr-target.ts';
import { logged } from './commons/logged.ts';

const environmentSchema = z.object({ PGSNAP_DR: drTargetVariable });

const eventSchema = z.object({
  cluster: clusterNameSchema,
  backupId: backupIdSchema,
  repository: z.string(),
  snapshotSet: z.object({
    snapshots: snapshotListSchema,
    /** When the snapshots were taken: time-based copies complete within the DR RPO from it. */
    createdAt: z.optional(z.iso.datetime()),
  }),
});

/** The handler with its STS client given (which assumes the DR role when the copy crosses accounts). */
export const copySnapshotsHandler =
  (sts: STSClient) =>
  async (event: unknown): Promise<DrCopySet> => {
    const { PGSNAP_DR } = parseWith(environmentSchema, process.env, 'the copy-snapshots environment');
    const target = await withDrRepositories(PGSNAP_DR);
    const request = parseWith(eventSchema, event, 'the copy-snapshots event');
    if (!target.clusters[request.cluster]) {
      // Not copied: an empty set, which the state machine reads as "nothing to wait for".
      return {
        account: target.account,
        region: target.region,
        copies: [],
        startedAt: new Date().toISOString(),
      };
    }
    const clients = await openDrClients(sts, target, {
      sessionName: `pgsnap-copy-${request.backupId}`,
      repository: request.repository,
      cluster: request.cluster,
    });
    const { source, session, repository } = clients;
    try {
      const copySet = await startDrCopies(
        { source, drEc2: session.ec2 },
        {
          target,
          cluster: request.cluster,
          backupId: request.backupId,
          snapshots: request.snapshotSet.snapshots,
          ...(request.snapshotSet.createdAt ? { backupTime: request.snapshotSet.createdAt } : {}),
        },
      );
      const dr = await session.openRepository(request.cluster);
      await copyBackupToDrRepository(repository, dr, { backupId: request.backupId, copySet });
      return copySet;
    } finally {
      clients.close();
    }
  };

export const handler = logged('copy-snapshots', copySnapshotsHandler(new STSClient(sdkRetry)));
