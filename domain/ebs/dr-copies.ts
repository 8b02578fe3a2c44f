/**
 * Disaster-recovery copies of a completed backup (issue 5): its EBS snapshots
 * copied into the DR region, or into the DR account, which then owns them and
 * has re-encrypted them with its own key; its artifacts, cluster.json and a
 * DR-side manifest written to the DR repository. The WAL gets there by S3
 * replication, not here.
 *
 * Across accounts, EBS copies a snapshot only when it is shared with the
 * destination account (createVolumePermission) and the destination may use
 * the key that encrypts it: a KMS grant on the source key to the DR role.
 * Snapshots encrypted with the AWS managed key `aws/ebs` cannot be shared at
 * all (https://docs.aws.amazon.com/ebs/latest/userguide/ebs-modifying-snapshot-permissions.html).
 * Once the copies are done, or given up, the sharing and the grants are taken
 * back.
 *
 * A failed copy never fails the backup: the source manifest stays completed
 * and records the copy as failed; the DR-side manifest is marked failed and
 * names the copies, which DR retention deletes from the DR account: nothing
 * here deletes in DR.
 */
import {
  CopySnapshotCommand,
  type EC2Client,
  LockSnapshotCommand,
  ModifySnapshotAttributeCommand,
  type Snapshot,
} from '@aws-sdk/client-ec2';
import {
  CreateGrantCommand,
  DescribeKeyCommand,
  type GrantOperation,
  type KMSClient,
  ListGrantsCommand,
  RevokeGrantCommand,
} from '@aws-sdk/client-kms';
import { ManifestStateError, TimeoutError } from '../errors.ts';
import { checkClusterPin } from '../repository/cluster-pin.ts';
import type { Manifest, ManifestCopy } from '../repository/manifest.ts';
import type { Repository } from '../repository/repository.ts';
import { nextWaitSeconds, type PollSettings } from './check-snapshot-set.ts';
import { type DrTarget, isCrossAccount } from './dr-target.ts';
import {
  type SnapshotOfSet,
  snapshotsById,
  snapshotsOfBackup,
  snapshotTags,
  visibilityGraceMs,
} from './snapshots.ts';

/** Tag on a DR copy naming the snapshot it was copied from. */
export const copyTags = { sourceSnapshotId: 'pgsnap:source-snapshot-id' } as const;

/** What the DR account may do with the source key, and no more: what EBS needs to copy the snapshot. */
export const grantOperations: GrantOperation[] = [
  'Decrypt',
  'DescribeKey',
  'CreateGrant',
  'ReEncryptFrom',
  'GenerateDataKeyWithoutPlaintext',
];

/** A copy could not be made, ended in error, or was given up; the backup itself stays completed. */
const grantName = (backupId: string) => `pgsnap-dr-${backupId}`;

export class CopyFailedError extends Error {
  override name = 'CopyFailedError';
}

/** The copies of one backup while they are made: what the later steps need to follow and clean up. */
export interface DrCopySet {
  account: string;
  region: string;
  copies: ManifestCopy[];
  /** When the copies were started: the copy timeout counts from here. */
  startedAt: string;
}

export interface SourceClients {
  /** EC2 and KMS in the source account and region. */
  ec2: EC2Client;
  kms: KMSClient;
}

function sourceIdOf(snapshot: Snapshot): string | undefined {
  return snapshot.Tags?.find((t) => t.Key === copyTags.sourceSnapshotId)?.Value;
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
async function shareWithDrAccount(
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

/**
 * Starts the copies of a completed backup's snapshots in the DR region (and
 * account). A repeated call finds the copies already started by their tags
 * and starts only the missing ones.
 */
export async function startDrCopies(
  clients: { source: SourceClients; drEc2: EC2Client },
  request: {
    target: DrTarget;
    cluster: string;
    backupId: string;
    snapshots: SnapshotOfSet[];
    now?: Date;
  },
): Promise<DrCopySet> {
  const { target, cluster, backupId } = request;
  const sourceIds = request.snapshots.map((s) => s.snapshotId);
  if (isCrossAccount(target)) await shareWithDrAccount(clients.source, target, backupId, sourceIds);
  const existing = await snapshotsOfBackup(clients.drEc2, backupId);
  const copies: ManifestCopy[] = [];
  for (const snapshot of request.snapshots) {
    const already = existing.find((s) => sourceIdOf(s) === snapshot.snapshotId);
    const snapshotId =
      already?.SnapshotId ??
      (
        await clients.drEc2.send(
          new CopySnapshotCommand({
            SourceRegion: target.sourceRegion,
            SourceSnapshotId: snapshot.snapshotId,
            Encrypted: true,
            KmsKeyId: target.kmsKeyArn,
            Description: `pgsnap DR copy of ${snapshot.snapshotId} (backup ${backupId} of ${cluster})`,
            TagSpecifications: [
              {
                ResourceType: 'snapshot',
                Tags: [
                  { Key: snapshotTags.cluster, Value: cluster },
                  { Key: snapshotTags.backupId, Value: backupId },
                  { Key: copyTags.sourceSnapshotId, Value: snapshot.snapshotId },
                  { Key: 'Name', Value: `pgsnap ${cluster} ${backupId} DR` },
                ],
              },
            ],
          }),
        )
      ).SnapshotId!;
    copies.push({
      account: target.account,
      region: target.region,
      sourceSnapshotId: snapshot.snapshotId,
      snapshotId,
      volumeId: snapshot.volumeId,
      state: already?.State ?? 'pending',
    });
  }
  return {
    account: target.account,
    region: target.region,
    copies,
    startedAt: (request.now ?? new Date()).toISOString(),
  };
}

/**
 * Copies what a restore from the DR account needs besides the snapshots and
 * the WAL: cluster.json, the artifacts (checked against their sha256 on the
 * way), and a DR-side manifest whose snapshots are the DR copies, written last
 * and `snapshotting` until the copies are completed.
 */
export async function copyBackupToDrRepository(
  source: Repository,
  dr: Repository,
  request: { backupId: string; copySet: DrCopySet },
): Promise<Manifest> {
  const manifest = await source.readManifest(request.backupId);
  if (manifest?.state !== 'completed') {
    throw new ManifestStateError(
      `backup ${request.backupId} is ${manifest ? manifest.state : 'not in the repository'} in ${source.url}; ` +
        'only a completed backup is copied to DR',
    );
  }
  const pin = await source.requirePin();
  const drPin = await dr.readPin();
  if (drPin) checkClusterPin(drPin, pin, dr.url);
  else
    await dr.store.putIfAbsent(
      `${dr.cluster}/cluster.json`,
      Buffer.from(`${JSON.stringify(pin, null, 2)}\n`),
    );
  for (const artifact of manifest.artifacts) {
    await dr.putArtifact(
      request.backupId,
      artifact.name,
      await source.readArtifact(request.backupId, artifact),
    );
  }
  const drManifest = drManifestOf(manifest, request.copySet.copies, 'snapshotting');
  await dr.writeManifest(drManifest);
  await source.writeManifest({
    ...manifest,
    copies: request.copySet.copies,
    updatedAt: new Date().toISOString(),
  });
  return drManifest;
}

/** The DR-side manifest: the source manifest with the DR copies as its snapshots. */
function drManifestOf(
  manifest: Manifest,
  copies: ManifestCopy[],
  state: 'snapshotting' | 'completed' | 'failed',
): Manifest {
  return {
    ...manifest,
    state,
    snapshots: copies
      .filter((c) => c.snapshotId)
      .map((c) => {
        // The source volume's record, for a restore in the DR region: the copy is encrypted with the DR
        // key (which a volume made from it uses by default), and its zone is the restore's instance's.
        const source = manifest.snapshots.find((s) => s.snapshotId === c.sourceSnapshotId)?.volume;
        const { kmsKeyId: _sourceKey, ...volume } = source ?? { kmsKeyId: undefined };
        return {
          provider: 'ebs',
          snapshotId: c.snapshotId!,
          ...(c.volumeId ? { volumeId: c.volumeId } : {}),
          state: c.state,
          ...(source
            ? { volume: { ...(volume as typeof source), encrypted: true, availabilityZone: c.region } }
            : {}),
        };
      }),
    copies,
    updatedAt: new Date().toISOString(),
  };
}

export interface CopyProgress {
  completed: boolean;
  attempt: number;
  waitSeconds: number;
  progress: string;
  copies: ManifestCopy[];
}

/** One poll of the copies in the DR region: completed, still pending, or failed (CopyFailedError, TimeoutError). */
export async function checkDrCopies(
  drEc2: EC2Client,
  request: {
    copySet: DrCopySet;
    attempt: number;
    settings: PollSettings;
    now?: Date;
  },
): Promise<CopyProgress> {
  const ids = request.copySet.copies.map((c) => c.snapshotId).filter((id): id is string => id !== undefined);
  const found = await snapshotsById(drEc2, ids);
  const missing = ids.filter((id) => !found.some((s) => s.SnapshotId === id));
  const now = request.now ?? new Date();
  // A copy just started may not be visible yet (eventual consistency): pending until the grace is over.
  if (missing.length > 0 && now.getTime() - Date.parse(request.copySet.startedAt) > visibilityGraceMs) {
    throw new CopyFailedError(
      `DR copy ${missing.join(', ')} no longer exists in ${request.copySet.region} of account ${request.copySet.account}`,
    );
  }
  const failed = found.find((s) => s.State === 'error');
  if (failed) {
    throw new CopyFailedError(
      `DR copy ${failed.SnapshotId} (of ${sourceIdOf(failed) ?? 'a source snapshot'}) in ${request.copySet.region} ` +
        `is in state error${failed.StateMessage ? ` (${failed.StateMessage})` : ''}`,
    );
  }
  const attempt = request.attempt + 1;
  const completed = missing.length === 0 && found.every((s) => s.State === 'completed');
  const lowest = Math.min(
    ...found.map((s) => Number.parseInt(s.Progress ?? '0', 10) || 0),
    ...missing.map(() => 0),
  );
  const elapsedMs = now.getTime() - Date.parse(request.copySet.startedAt);
  if (!completed && elapsedMs > request.settings.snapshotHours * 3_600_000) {
    throw new TimeoutError(
      `DR copies ${ids.join(', ')} are not completed ${request.settings.snapshotHours}h after they were started ` +
        `(lowest progress ${lowest}%); the copy is given up, the backup stays completed`,
    );
  }
  return {
    completed,
    attempt,
    waitSeconds: nextWaitSeconds(attempt, request.settings),
    progress: `${lowest}%`,
    copies: request.copySet.copies.map((c) => ({
      ...c,
      state: found.find((s) => s.SnapshotId === c.snapshotId)?.State ?? c.state,
    })),
  };
}

export type CopyOutcome = { outcome: 'completed' } | { outcome: 'failed'; reason: string };

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
    let Marker: string | undefined;
    do {
      const page = await source.kms.send(
        new ListGrantsCommand({
          KeyId: keyId,
          GranteePrincipal: target.roleArn,
          ...(Marker ? { Marker } : {}),
        }),
      );
      for (const grant of page.Grants ?? []) {
        if (grant.Name === grantName(backupId) && grant.GrantId)
          grants.push({ keyId, grantId: grant.GrantId });
      }
      Marker = page.Truncated ? page.NextMarker : undefined;
    } while (Marker);
  }
  return grants;
}

/**
 * Locks completed copies; for failed ones, finds every copy of the backup in
 * the DR region by its tags (also those a step that never returned started)
 * and records them as failed. They are not deleted here: no principal of the
 * source account may delete in DR. DR retention, which runs in the DR
 * account, deletes them with the failed DR-side manifest that names them.
 */
async function settleCopies(
  drEc2: EC2Client,
  request: {
    target: DrTarget;
    backupId: string;
    snapshots: SnapshotOfSet[];
    copySet?: DrCopySet;
  } & CopyOutcome,
): Promise<ManifestCopy[]> {
  const { target, backupId } = request;
  if (request.outcome === 'completed') {
    if (!request.copySet) throw new Error('completed copies need the copy set');
    const copies = request.copySet.copies.map((c) => ({ ...c, state: 'completed' }));
    // Locked copies cannot be deleted, in the DR account either, until the lock expires.
    const lock = target.snapshotLock;
    if (lock) {
      for (const copy of copies) {
        if (!copy.snapshotId) continue;
        await drEc2.send(
          new LockSnapshotCommand({
            SnapshotId: copy.snapshotId,
            LockMode: lock.mode,
            LockDuration: lock.days,
          }),
        );
      }
    }
    return copies;
  }
  const made = await snapshotsOfBackup(drEc2, backupId);
  return request.snapshots.map((s) => {
    const snapshotId =
      request.copySet?.copies.find((c) => c.sourceSnapshotId === s.snapshotId)?.snapshotId ??
      made.find((m) => sourceIdOf(m) === s.snapshotId)?.SnapshotId;
    return {
      account: target.account,
      region: target.region,
      sourceSnapshotId: s.snapshotId,
      ...(snapshotId ? { snapshotId } : {}),
      volumeId: s.volumeId,
      state: 'failed',
      reason: request.reason,
    };
  });
}

/** Takes back the grants on the source keys and the sharing of the source snapshots. */
async function unshare(
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

/**
 * Records how the copies ended: takes back the sharing and the grants
 * first, then writes the source manifest (which stays completed) and the
 * DR-side manifest (completed, or failed with the reason). On failure the
 * DR-side manifest names every copy of the backup found in the DR region by
 * its tags, also when the step that started them never returned, so that DR
 * retention (in the DR account) deletes them: a half-made copy restores
 * nothing, and the source account may not delete there.
 */
export async function finishDrCopies(
  clients: { source: SourceClients; drEc2: EC2Client },
  repositories: { source: Repository; dr: Repository },
  request: {
    target: DrTarget;
    backupId: string;
    /** The source snapshots. */
    snapshots: SnapshotOfSet[];
    /** The copies, when they were started. */
    copySet?: DrCopySet;
  } & CopyOutcome,
): Promise<{ copies: ManifestCopy[] }> {
  const { target, backupId } = request;
  const now = new Date().toISOString();
  let copies: ManifestCopy[];
  // The sharing and the grants are taken back whatever happens here (a lock or a delete refused), and
  // before any manifest is rewritten: a failure past this point never leaves the source snapshots
  // readable by the DR account.
  try {
    copies = await settleCopies(clients.drEc2, request);
  } finally {
    if (isCrossAccount(target)) await unshare(clients.source, target, backupId, request.snapshots);
  }

  const manifest = await repositories.source.readManifest(backupId);
  if (!manifest) {
    throw new ManifestStateError(`backup ${backupId} has no manifest in ${repositories.source.url}`);
  }
  await repositories.source.writeManifest({ ...manifest, copies, updatedAt: now });
  const drManifest = await repositories.dr.readManifest(backupId);
  if (drManifest || copies.some((c) => c.snapshotId)) {
    await repositories.dr.writeManifest({
      ...drManifestOf(manifest, copies, request.outcome),
      ...(request.outcome === 'failed' ? { failure: { reason: request.reason, at: now } } : {}),
    });
  }
  return { copies };
}
