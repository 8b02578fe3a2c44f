/**
 * What the restore Lambdas send, as IAM requests, at the source or in DR:
 * where a restore's resources are and which tags AWS sees on them.
 */
import { snapshotTags } from '#domain/ebs/snapshots';
import { restoreTags } from '#domain/restore/volumes';
import type { IamRequest } from './iam.ts';
import { type ClusterScope, type Deployed, drRegion, source } from './iam-deployment.ts';
import { backupId, type Sent, s3Requests } from './iam-s3-requests.ts';
import type { SentCommand } from './sent-commands.ts';

export const restoreHandlers = new Set([
  'prepare-restore',
  'find-restore-instance',
  'check-restore-instance',
  'create-restore-volumes',
  'check-restore-volumes',
  'attach-restore-volumes',
  'measure-restore-initialization',
  'record-restore',
  'release-restore-volumes',
  'terminate-restore-instance',
]);
export const restoreId = 'r-20260101T040000Z-d0d0d0';
/** The restore's cleanup Lambdas: they read the record's ids and write no record. */
export const cleanupReaders = new Set(['release-restore-volumes', 'terminate-restore-instance']);

/** Where a restore runs: at the source from the source snapshots, or in DR from the DR copies. */
export interface RestorePlace {
  account: string;
  region: string;
  bucketArn: string;
  keyArn: string;
  /** The snapshot the restore makes a volume from, and the key that encrypts it. */
  snapshotArn: string;
  volumeKeyArn: string;
}

export function sourcePlace(d: Deployed, c: ClusterScope): RestorePlace {
  return {
    ...source,
    bucketArn: d.sourceBucketArn,
    keyArn: d.sourceKeyArn,
    snapshotArn: c.sourceSnapshotArn,
    volumeKeyArn: d.volumeKeyArn,
  };
}

export function drPlace(d: Deployed, c: ClusterScope): RestorePlace {
  return {
    account: d.drAccount,
    region: drRegion,
    bucketArn: d.drBucketArn,
    keyArn: d.drKeyArn,
    snapshotArn: c.drSnapshotArn,
    // The copies are re-encrypted with the DR key.
    volumeKeyArn: d.drKeyArn,
  };
}

/** The volumes and instances a restore makes, as their tags show them. */
export function madeByRestore(c: ClusterScope, at: RestorePlace) {
  return {
    volume: `arn:aws:ec2:${at.region}:${at.account}:volume/vol-0e1b2c3d4e5f60001`,
    instance: `arn:aws:ec2:${at.region}:${at.account}:instance/i-0e1b2c3d4e5f60001`,
    tags: {
      [`aws:ResourceTag/${restoreTags.cluster}`]: c.name,
      [`aws:ResourceTag/${restoreTags.restoreId}`]: restoreId,
    },
    requestTags: {
      [`aws:RequestTag/${restoreTags.cluster}`]: c.name,
      [`aws:RequestTag/${restoreTags.restoreId}`]: restoreId,
      'aws:TagKeys': [restoreTags.cluster, restoreTags.restoreId, 'Name'],
    },
    launchedVolumeTags: {
      [`aws:RequestTag/${restoreTags.cluster}`]: c.name,
      [`aws:RequestTag/${restoreTags.restoreRoot}`]: restoreId,
      'aws:TagKeys': [restoreTags.cluster, restoreTags.restoreRoot, 'Name'],
    },
  };
}

/** Where a restore Lambda sends `command`: the restore records, the backup's objects, what the restore makes. */
export function restoreRequestsOf(
  command: SentCommand,
  handler: string,
  d: Deployed,
  c: ClusterScope,
  at: RestorePlace = sourcePlace(d, c),
): Sent[] {
  const made = madeByRestore(c, at);
  const own = (request: IamRequest): Sent => ({ as: 'own', request });
  if (command.client === 's3') {
    // The cleanup steps only read the ids the record names (their bundle's repository code can write).
    if (cleanupReaders.has(handler) && ['PutObject', 'DeleteObject'].includes(command.operation)) return [];
    const record = `${c.prefix}restores/${restoreId}.json`;
    const reads =
      handler === 'prepare-restore'
        ? [
            record,
            `${c.prefix}backups/${backupId}/manifest.json`,
            `${c.prefix}backups/${backupId}/backup_label`,
          ]
        : handler === 'find-restore-instance'
          ? [record, `${c.prefix}backups/${backupId}/manifest.json`]
          : [record];
    // The bundle's repository code can delete; a restore has nothing but its records to delete.
    const keys = command.operation === 'PutObject' || command.operation === 'DeleteObject' ? [record] : reads;
    const listPrefix = handler === 'prepare-restore' ? c.prefix : `${c.prefix}restores/`;
    return s3Requests('own', command.operation, at.bucketArn, at.keyArn, at.region, keys, listPrefix).map(
      // A restore record is rewritten at every phase, as a manifest is.
      (sent) =>
        sent.request.action === 's3:PutObject'
          ? { ...sent, request: { action: 's3:PutObject', resource: sent.request.resource } }
          : sent,
    );
  }
  const region = at.region;
  const any = (resource: string) => `arn:aws:ec2:${region}:${at.account}:${resource}/*`;
  switch (`${command.client}:${command.operation}`) {
    case 'ec2:DescribeInstances':
    case 'ec2:DescribeSnapshots':
    case 'ec2:DescribeVolumes':
    case 'ec2:DescribeVolumeStatus':
    case 'ec2:DescribeLaunchTemplateVersions':
      return [own({ action: `ec2:${command.operation}`, resource: '*' })];
    case 'ec2:RunInstances':
      return [
        own({ action: 'ec2:RunInstances', resource: any('instance'), context: made.requestTags }),
        // Per created resource type, each with its own tags (test/infra/iam-aws-semantics.test.ts derives them).
        own({ action: 'ec2:RunInstances', resource: any('volume'), context: made.launchedVolumeTags }),
        ...['network-interface', 'subnet', 'security-group', 'launch-template', 'key-pair'].map((r) =>
          own({ action: 'ec2:RunInstances', resource: any(r) }),
        ),
        own({ action: 'ec2:RunInstances', resource: `arn:aws:ec2:${region}::image/ami-0123456789abcdef0` }),
        own({
          action: 'ec2:CreateTags',
          resource: any('instance'),
          context: { ...made.requestTags, 'ec2:CreateAction': 'RunInstances' },
        }),
        own({
          action: 'iam:PassRole',
          resource: `arn:aws:iam::${at.account}:role/pgsnap-drill-instance`,
          context: { 'iam:PassedToService': 'ec2.amazonaws.com' },
        }),
      ];
    case 'ec2:CreateVolume':
      return [
        own({ action: 'ec2:CreateVolume', resource: any('volume'), context: made.requestTags }),
        own({
          action: 'ec2:CreateVolume',
          resource: at.snapshotArn,
          context: { [`aws:ResourceTag/${snapshotTags.cluster}`]: c.name },
        }),
        own({
          action: 'ec2:CreateTags',
          resource: any('volume'),
          context: { ...made.requestTags, 'ec2:CreateAction': 'CreateVolume' },
        }),
        ...['kms:CreateGrant', 'kms:Decrypt', 'kms:DescribeKey', 'kms:GenerateDataKeyWithoutPlaintext'].map(
          (action) =>
            own({
              action,
              resource: at.volumeKeyArn,
              context: { 'kms:ViaService': `ec2.${region}.amazonaws.com` },
            }),
        ),
      ];
    case 'ec2:AttachVolume':
      return [
        own({ action: 'ec2:AttachVolume', resource: made.volume, context: made.tags }),
        own({ action: 'ec2:AttachVolume', resource: made.instance }),
      ];
    case 'ec2:DetachVolume':
      return [
        own({ action: 'ec2:DetachVolume', resource: made.volume, context: made.tags }),
        own({ action: 'ec2:DetachVolume', resource: made.instance }),
      ];
    case 'ec2:DeleteVolume':
      return [own({ action: 'ec2:DeleteVolume', resource: made.volume, context: made.tags })];
    case 'ec2:TerminateInstances':
      return [own({ action: 'ec2:TerminateInstances', resource: made.instance, context: made.tags })];
    default:
      throw new Error(
        `${command.client}:${command.operation} (sent by ${handler}) is not in the restore table`,
      );
  }
}

/**
 * Where `handler` sends `command` for cluster `c`, as the ARNs and condition
 * keys AWS evaluates. Throws for a command it does not know.
 */
