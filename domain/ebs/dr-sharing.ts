/**
 * What a copy into another account needs at the source, and taking it back:
 * the source snapshots shared with the DR account (createVolumePermission)
 * and a KMS grant on each key that encrypts them to the DR role. Snapshots
 * encrypted with the AWS managed key `aws/ebs` cannot be shared at all
 * (https://docs.aws.amazon.com/ebs/latest/userguide/ebs-modifying-snapshot-permissions.html).
 */
import { type EC2Client, ModifySnapshotAttributeCommand } from '@aws-sdk/client-ec2';
import {
  CreateGrantCommand,
  DescribeKeyCommand,
  type GrantOperation,
  type KMSClient,
  paginateListGrants,
  RevokeGrantCommand,
} from '@aws-sdk/client-kms';
import { CopyFailedError } from '../errors.ts';
import type { DrTarget } from './dr-target.ts';
import { type SnapshotOfSet, snapshotsById } from './snapshots.ts';

/** What the DR account may do with the source key, and no more: what EBS needs to copy the snapshot. */
export const grantOperations: GrantOperation[] = [
  'Decrypt',
  'DescribeKey',
  'CreateGrant',
  'ReEncryptFrom',
  'GenerateDataKeyWithoutPlaintext',
];

const grantName = (backupId: string) => `pgsnap-dr-${backupId}`;

export interface SourceClients {
  /** EC2 and KMS in the source account and region. */
  ec2: EC2Client;
  kms: KMSClient;
}

/**
 * The keys that encrypt the source snapshots, which the DR account must be
 * granted. An unencrypted snapshot needs none: it is shared as it is and its
 * copy is encrypted with the DR key. An encrypted snapshot whose key EC2 does
 * not report cannot be granted, and the copy in the DR account would fail
 * later with an error that does not say why; it is refused here, as is a
 * snapshot that does not exist.
 */
async function keysOfSourceSnapshots(
  source: SourceClients,
  target: DrTarget,
  backupId: string,
  snapshotIds: string[],
): Promise<Set<string>> {
  const described = await snapshotsById(source.ec2, snapshotIds);
  const missing = snapshotIds.filter((id) => !described.some((s) => s.SnapshotId === id));
  if (missing.length > 0) {
    throw new CopyFailedError(
      `snapshot ${missing.join(', ')} of backup ${backupId} does not exist in ${target.sourceRegion}; ` +
        'there is nothing to copy to DR',
    );
  }
  const keys = new Set<string>();
  for (const snapshot of described) {
    if (!snapshot.Encrypted) continue;
    if (!snapshot.KmsKeyId) {
      throw new CopyFailedError(
        `snapshot ${snapshot.SnapshotId} of backup ${backupId} is encrypted, but EC2 reports no KMS key for it, ` +
          `so account ${target.account} cannot be granted its use and the copy would fail; encrypt the ` +
          "cluster's volumes with a customer managed key (EBS encryption by default can name one) and take a new backup",
      );
    }
    keys.add(snapshot.KmsKeyId);
  }
  return keys;
}

/**
 * Shares the source snapshots with the DR account and grants the DR role the
 * use of their keys. Refuses snapshots under the AWS managed key, which no
 * other account can ever use.
 */
export async function shareWithDrAccount(
  source: SourceClients,
  target: DrTarget,
  backupId: string,
  snapshotIds: string[],
): Promise<void> {
  const keys = await keysOfSourceSnapshots(source, target, backupId, snapshotIds);
  for (const keyId of keys) {
    const key = await source.kms.send(new DescribeKeyCommand({ KeyId: keyId }));
    if (key.KeyMetadata?.KeyManager === 'AWS') {
      throw new CopyFailedError(
        `the snapshots of backup ${backupId} are encrypted with the AWS managed key ${keyId}, which cannot be ` +
          `shared with account ${target.account}; encrypt the cluster's volumes with a customer managed key ` +
          '(EBS encryption by default can name one) and take a new backup',
      );
    }
    await source.kms.send(
      new CreateGrantCommand({
        KeyId: keyId,
        GranteePrincipal: target.roleArn,
        Operations: grantOperations,
        // A grant of the same name and parameters is the same grant: a retried step creates no second one.
        Name: grantName(backupId),
      }),
    );
  }
  await setSharing(source.ec2, snapshotIds, target.account, 'add');
}

/** The grants `startDrCopies` made on the keys of the source snapshots, found by their name. */
async function grantsOfBackup(
  source: SourceClients,
  target: DrTarget,
  backupId: string,
  snapshotIds: string[],
): Promise<Array<{ keyId: string; grantId: string }>> {
  const described = await snapshotsById(source.ec2, snapshotIds);
  const keys = new Set(described.flatMap((s) => (s.Encrypted && s.KmsKeyId ? [s.KmsKeyId] : [])));
  const grants: Array<{ keyId: string; grantId: string }> = [];
  for (const keyId of keys) {
    const pages = paginateListGrants(
      { client: source.kms },
      { KeyId: keyId, GranteePrincipal: target.roleArn },
    );
    for await (const page of pages) {
      for (const grant of page.Grants ?? []) {
        if (grant.Name === grantName(backupId) && grant.GrantId)
          grants.push({ keyId, grantId: grant.GrantId });
      }
    }
  }
  return grants;
}

/** Takes back the grants on the source keys and the sharing of the source snapshots. */
export async function unshare(
  source: SourceClients,
  target: DrTarget,
  backupId: string,
  snapshots: SnapshotOfSet[],
): Promise<void> {
  const sourceIds = snapshots.map((s) => s.snapshotId);
  for (const grant of await grantsOfBackup(source, target, backupId, sourceIds)) {
    await source.kms.send(new RevokeGrantCommand({ KeyId: grant.keyId, GrantId: grant.grantId }));
  }
  await setSharing(source.ec2, sourceIds, target.account, 'remove');
}

/** Shares the snapshots with the DR account (`add`), or takes the sharing back (`remove`). */
async function setSharing(
  ec2: EC2Client,
  snapshotIds: string[],
  account: string,
  operation: 'add' | 'remove',
): Promise<void> {
  for (const snapshotId of snapshotIds) {
    await ec2.send(
      new ModifySnapshotAttributeCommand({
        SnapshotId: snapshotId,
        Attribute: 'createVolumePermission',
        OperationType: operation,
        UserIds: [account],
      }),
    );
  }
}
