/** Lambda for "Copy the backup to DR": starts the snapshot copies and copies the artifacts and manifest. */
import { EC2Client } from '@aws-sdk/client-ec2';
import { KMSClient } from '@aws-sdk/client-kms';
import { STSClient } from '@aws-sdk/client-sts';
import { copyBackupToDrRepository, type DrCopySet, startDrCopies } from '#domain/ebs/dr-copies';
import { drTargetVariable, openDrSession } from '#domain/ebs/dr-target';
import { snapshotListSchema } from '#domain/ebs/snapshots';
import { backupIdSchema, clusterNameSchema } from '#domain/ids';
import { parseWith } from '#domain/parse';
import { openRepository } from '#domain/repository/open';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const sts = new STSClient({});

const environmentSchema = z.object({ PGSNAP_DR: drTargetVariable });

const eventSchema = z.object({
  cluster: clusterNameSchema,
  backupId: backupIdSchema,
  repository: z.string(),
  snapshotSet: z.object({
    snapshots: snapshotListSchema,
  }),
});

async function handle(event: unknown): Promise<DrCopySet> {
  const { PGSNAP_DR: target } = parseWith(environmentSchema, process.env, 'the copy-snapshots environment');
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
  const source = {
    ec2: new EC2Client({ region: target.sourceRegion }),
    kms: new KMSClient({ region: target.sourceRegion }),
  };
  const session = await openDrSession(sts, target, { sessionName: `pgsnap-copy-${request.backupId}` });
  const repository = await openRepository(request.repository, request.cluster);
  try {
    const copySet = await startDrCopies(
      { source, drEc2: session.ec2 },
      {
        target,
        cluster: request.cluster,
        backupId: request.backupId,
        snapshots: request.snapshotSet.snapshots,
      },
    );
    const dr = await session.openRepository(request.cluster);
    await copyBackupToDrRepository(repository, dr, { backupId: request.backupId, copySet });
    return copySet;
  } finally {
    repository.close();
    session.close();
    source.ec2.destroy();
    source.kms.destroy();
  }
}

export const handler = logged('copy-snapshots', handle);
