/**
 * What the two DR Lambdas that act on both sides (copy-snapshots,
 * record-copies) open for one backup: EC2 and KMS in the source region, the
 * session in the DR account and region (the DR role assumed when the copy
 * crosses accounts), and the source repository; closed together.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { KMSClient } from '@aws-sdk/client-kms';
import type { STSClient } from '@aws-sdk/client-sts';
import { sdkRetry } from '#domain/aws-retry';
import type { SourceClients } from '#domain/ebs/dr-sharing';
import { type DrSession, type DrTarget, openDrSession } from '#domain/ebs/dr-target';
import { openRepository } from '#domain/repository/open';
import type { Repository } from '#domain/repository/repository';

export interface DrClients {
  source: SourceClients;
  session: DrSession;
  /** The backup's source repository. */
  repository: Repository;
  close(): void;
}

export async function openDrClients(
  sts: STSClient,
  target: DrTarget,
  request: { sessionName: string; repository: string; cluster: string },
): Promise<DrClients> {
  const source = {
    ec2: new EC2Client({ ...sdkRetry, region: target.sourceRegion }),
    kms: new KMSClient({ ...sdkRetry, region: target.sourceRegion }),
  };
  const closeSource = () => {
    source.ec2.destroy();
    source.kms.destroy();
  };
  let session: DrSession | undefined;
  try {
    session = await openDrSession(sts, target, { sessionName: request.sessionName });
    const repository = await openRepository(request.repository, request.cluster);
    const opened = session;
    return {
      source,
      session: opened,
      repository,
      close: () => {
        repository.close();
        opened.close();
        closeSource();
      },
    };
  } catch (error) {
    session?.close();
    closeSource();
    throw error;
  }
}
