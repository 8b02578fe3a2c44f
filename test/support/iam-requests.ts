/**
 * Where each command a Lambda sends goes (which ARN, which condition keys AWS
 * sets), at the source (`requestsOf`) and in DR (`drRequestsOf`); it throws on
 * a command it does not know, so a new command cannot go unchecked.
 */
import { proposedManifestName } from '#domain/ebs/dr-copies';
import { grantOperations } from '#domain/ebs/dr-sharing';
import { snapshotTags } from '#domain/ebs/snapshots';
import { backupMetrics } from '../../infra/monitoring/metrics-and-events.ts';
import type { IamRequest } from './iam.ts';
import { type ClusterScope, type Deployed, drRegion, externalId, source } from './iam-deployment.ts';
import { drPlace, restoreHandlers, restoreId, restoreRequestsOf } from './iam-restore-requests.ts';
import { backupId, copierHandlers, type Sent, s3Requests } from './iam-s3-requests.ts';
import type { SentCommand } from './sent-commands.ts';

export function requestsOf(command: SentCommand, handler: string, d: Deployed, c: ClusterScope): Sent[] {
  const key = `${command.client}:${command.operation}`;
  const tags = {
    [`aws:RequestTag/${snapshotTags.cluster}`]: c.name,
    [`aws:RequestTag/${snapshotTags.backupId}`]: backupId,
    'aws:TagKeys': [snapshotTags.cluster, snapshotTags.backupId],
  };
  const ownedBy = { [`aws:ResourceTag/${snapshotTags.cluster}`]: c.name };
  const ebsUses = (keyArn: string, region: string, actions: string[]) =>
    actions.map((action) => ({
      as: 'dr' as const,
      request: {
        action,
        resource: keyArn,
        context: {
          'kms:ViaService': `ec2.${region}.amazonaws.com`,
          ...(action === 'kms:CreateGrant' ? { 'kms:GrantIsForAWSResource': 'true' } : {}),
        },
      },
    }));
  // Only a WAL fetch asks for an object's versions (Repository.fetchWal), which no Lambda does.
  if (command.client === 's3' && command.operation === 'ListObjectVersions') return [];
  if (handler === 'start-retention') return startRetentionRequestsOf(command, d.functions, d.catalogKey, d);
  const catalog = catalogRequestsOf(
    command,
    handler,
    d.sourceBucketArn,
    d.sourceKeyArn,
    source.region,
    d.catalogKey,
  );
  if (catalog) return catalog;
  if (restoreHandlers.has(handler)) {
    return [
      ...restoreRequestsOf(command, handler, d, c),
      ...catalogReadOf(command, handler, d.sourceBucketArn, d.sourceKeyArn, source.region, d.catalogKey),
    ];
  }
  if (command.client === 's3') {
    // record-backup and create-snapshots only read and rewrite the backup's manifest (create-snapshots records
    // its call there, for idempotency); the others also read the cluster's pin.
    // report-backup-age only reads the manifests, and retention reads and deletes: neither writes (the
    // bundle's repository code can).
    if (handler === 'report-backup-age' && ['PutObject', 'DeleteObject'].includes(command.operation))
      return [];
    if (handler === 'apply-retention' && command.operation === 'PutObject') return [];
    const manifestOnly =
      handler === 'record-backup' || handler === 'create-snapshots' || handler === 'report-backup-age';
    const keys = manifestOnly
      ? [
          `${c.prefix}backups/${backupId}/manifest.json`,
          // record-backup and create-snapshots check what the host proposed against the pin and the WAL.
          ...(handler === 'report-backup-age' || command.operation !== 'GetObject'
            ? []
            : [`${c.prefix}cluster.json`, `${c.prefix}wal/000000010000000000000003.zst`]),
        ]
      : [`${c.prefix}cluster.json`, `${c.prefix}backups/${backupId}/manifest.json`];
    const listPrefix = manifestOnly ? `${c.prefix}backups/` : c.prefix;
    const sent = [
      ...s3Requests(
        'own',
        command.operation,
        d.sourceBucketArn,
        d.sourceKeyArn,
        source.region,
        keys,
        listPrefix,
      ),
      ...catalogReadOf(command, handler, d.sourceBucketArn, d.sourceKeyArn, source.region, d.catalogKey),
    ];
    if (!copierHandlers.has(handler)) return sent;
    // The copy steps read and write, here and in the DR repository (as the DR side), and delete in
    // neither: the bundle's repository code can; only retention deletes, each side its own.
    if (command.operation === 'DeleteObject') return [];
    // In DR they write no manifest: they put the pin, the artifacts and the proposed manifest, each once,
    // and the DR stack's recorder records (record-dr-backup); they still read the DR manifest a retry finds.
    const drKeys =
      command.operation === 'PutObject'
        ? [
            `${c.prefix}cluster.json`,
            `${c.prefix}backups/${backupId}/backup_label`,
            `${c.prefix}backups/${backupId}/${proposedManifestName}`,
          ]
        : keys;
    return [
      ...sent,
      ...s3Requests('dr', command.operation, d.drBucketArn, d.drKeyArn, drRegion, drKeys, listPrefix),
    ];
  }
  switch (key) {
    case 'ec2:DescribeInstances':
    case 'ec2:DescribeVolumes':
      return [{ as: 'own', request: { action: `ec2:${command.operation}`, resource: '*' } }];
    case 'ec2:DescribeSnapshots':
      return [
        { as: 'own', request: { action: 'ec2:DescribeSnapshots', resource: '*' } },
        ...(copierHandlers.has(handler)
          ? [{ as: 'dr' as const, request: { action: 'ec2:DescribeSnapshots', resource: '*' } }]
          : []),
      ];
    case 'ec2:CreateSnapshots': {
      const instanceTags = Object.fromEntries(
        Object.entries(c.instanceTags).map(([k, v]) => [`aws:ResourceTag/${k}`, v]),
      );
      const newSnapshots = `arn:aws:ec2:${source.region}::snapshot/*`;
      return [
        {
          as: 'own',
          request: { action: 'ec2:CreateSnapshots', resource: c.instanceArn, context: instanceTags },
        },
        { as: 'own', request: { action: 'ec2:CreateSnapshots', resource: c.volumeArn } },
        { as: 'own', request: { action: 'ec2:CreateSnapshots', resource: newSnapshots, context: tags } },
        {
          as: 'own',
          request: {
            action: 'ec2:CreateTags',
            resource: newSnapshots,
            context: { ...tags, 'ec2:CreateAction': 'CreateSnapshots' },
          },
        },
      ];
    }
    case 'ec2:DeleteSnapshot': {
      const atSource = {
        as: 'own' as const,
        request: { action: 'ec2:DeleteSnapshot', resource: c.sourceSnapshotArn, context: ownedBy },
      };
      if (handler === 'delete-snapshots' || handler === 'apply-retention') return [atSource];
      throw new Error(`ec2:DeleteSnapshot from ${handler} is not in the table of requests`);
    }
    case 'ec2:DescribeLockedSnapshots': {
      // Asked after a failed delete, wherever that delete was (above): no resource-level permissions.
      const atSource = {
        as: 'own' as const,
        request: { action: 'ec2:DescribeLockedSnapshots', resource: '*' },
      };
      if (handler === 'delete-snapshots' || handler === 'apply-retention') return [atSource];
      throw new Error(`ec2:DescribeLockedSnapshots from ${handler} is not in the table of requests`);
    }
    case 'ec2:CopySnapshot': {
      const newCopies = `arn:aws:ec2:${drRegion}::snapshot/*`;
      return [
        { as: 'dr', request: { action: 'ec2:CopySnapshot', resource: c.sourceSnapshotArn } },
        { as: 'dr', request: { action: 'ec2:CopySnapshot', resource: newCopies, context: tags } },
        {
          as: 'dr',
          request: {
            action: 'ec2:CreateTags',
            resource: newCopies,
            context: { ...tags, 'ec2:CreateAction': 'CopySnapshot' },
          },
        },
        // EBS re-encrypts the copy with the DR key, as the requester (Amazon EBS encryption requirements).
        ...ebsUses(d.drKeyArn, drRegion, [
          'kms:CreateGrant',
          'kms:Decrypt',
          'kms:DescribeKey',
          'kms:GenerateDataKeyWithoutPlaintext',
          'kms:ReEncryptTo',
        ]),
        // ...and reads the source with the volumes' key; across accounts through the grant (not modelled).
        ...(d.crossAccount
          ? []
          : ebsUses(d.volumeKeyArn, source.region, [
              'kms:CreateGrant',
              'kms:Decrypt',
              'kms:DescribeKey',
              'kms:ReEncryptFrom',
            ])),
      ];
    }
    case 'ec2:LockSnapshot':
      // Sent only with a configured snapshotLock (the cross-account mode above).
      if (!d.snapshotLock) return [];
      return [
        {
          as: 'dr',
          request: {
            action: 'ec2:LockSnapshot',
            resource: c.drSnapshotArn,
            // The configured snapshotLock.days of the cross-account mode (modes above).
            context: { ...ownedBy, 'ec2:SnapshotLockDuration': '35' },
          },
        },
      ];
    // Sharing, grants and AssumeRole are what a copy to another account needs (isCrossAccount in the code).
    case 'ec2:ModifySnapshotAttribute':
      return d.crossAccount
        ? [
            {
              as: 'own',
              request: {
                action: 'ec2:ModifySnapshotAttribute',
                resource: c.sourceSnapshotArn,
                context: ownedBy,
              },
            },
          ]
        : [];
    case 'kms:DescribeKey':
    case 'kms:ListGrants':
    case 'kms:RevokeGrant':
      return d.crossAccount ? [{ as: 'own', request: { action: key, resource: d.volumeKeyArn } }] : [];
    case 'kms:CreateGrant':
      return d.crossAccount
        ? [
            {
              as: 'own',
              request: {
                action: key,
                resource: d.volumeKeyArn,
                context: { 'kms:GranteePrincipal': d.drRoleArn, 'kms:GrantOperations': grantOperations },
              },
            },
          ]
        : [];
    case 'sts:AssumeRole':
      if (handler === 'vend-credentials') {
        // The discovered-cluster role, with the host's cluster as a session tag (infra/guards/discovered-hosts.ts).
        const resource = `arn:aws:iam::${source.account}:role/pgsnap-prod-discovered-cluster`;
        const context = {
          'aws:RequestTag/pgsnap:cluster': 'inventory-db',
          'aws:TagKeys': ['pgsnap:cluster'],
        };
        return [
          { as: 'own', request: { action: 'sts:AssumeRole', resource } },
          { as: 'own', request: { action: 'sts:TagSession', resource, context } },
        ];
      }
      return d.crossAccount
        ? [
            {
              as: 'own',
              request: {
                action: 'sts:AssumeRole',
                resource: d.drRoleArn,
                context: { 'sts:ExternalId': externalId },
              },
            },
          ]
        : [];
    case 'sfn:StartExecution':
    case 'sfn:ListExecutions':
      // start-drill starts the restore state machine; start-backup the backup state machine.
      return [
        {
          as: 'own',
          request: {
            action: `states:${command.operation}`,
            resource: handler === 'start-drill' ? d.restoreStateMachineArn : d.stateMachineArn,
          },
        },
      ];
    case 'sfn:DescribeExecution':
      return [
        {
          as: 'own',
          request: {
            action: 'states:DescribeExecution',
            resource: `arn:aws:states:${source.region}:${source.account}:execution:pgsnap-prod-backup:${backupId}`,
          },
        },
      ];
    case 'dynamodb:GetItem':
    case 'dynamodb:PutItem':
      // The budget Lambdas read and write the budget item of the stack's own table, and nothing else.
      return [{ as: 'own', request: { action: key, resource: d.budgetTableArn } }];
    case 'sfn:SendTaskSuccess':
      // The budget Lambdas answer the task tokens of the waiters they hand a share; no resource-level permissions.
      return [{ as: 'own', request: { action: `states:${command.operation}`, resource: '*' } }];
    case 'cloudwatch:GetMetricData':
      // report-backup-age reads the hosts' archive lag (ClustersWithoutArchiveHealth); no resource-level permissions.
      return [{ as: 'own', request: { action: key, resource: '*' } }];
    case 'cloudwatch:PutMetricData':
      // record-backup's durations and report-backup-age's fleet counts, in the state machine's namespace.
      return [
        {
          as: 'own',
          request: {
            action: 'cloudwatch:PutMetricData',
            resource: '*',
            context: { 'cloudwatch:namespace': backupMetrics.namespace },
          },
        },
      ];
    default:
      throw new Error(`${key} (sent by ${handler}) is not in the table of requests; add where it goes`);
  }
}

/**
 * Where a Lambda of the DR stack sends `command` for cluster `c`: DR
 * retention over the DR repository and the DR copies, restores from the DR
 * copies; all as the DR account, with the function's own role.
 */
export function drRequestsOf(command: SentCommand, handler: string, d: Deployed, c: ClusterScope): Sent[] {
  const at = drPlace(d, c);
  if (handler === 'start-retention')
    return startRetentionRequestsOf(command, d.drFunctions, d.drCatalogKey, d, true);
  const catalog = catalogRequestsOf(command, handler, d.drBucketArn, d.drKeyArn, drRegion, d.drCatalogKey);
  if (catalog) return catalog;
  if (restoreHandlers.has(handler)) {
    return [
      ...restoreRequestsOf(command, handler, d, c, at),
      ...catalogReadOf(command, handler, d.drBucketArn, d.drKeyArn, drRegion, d.drCatalogKey),
    ];
  }
  if (!['apply-retention', 'start-drill', 'report-backup-age', 'record-dr-backup'].includes(handler))
    throw new Error(`${handler} in the DR stack is not in the table`);
  const own = (request: IamRequest): Sent => ({ as: 'own', request });
  if (handler === 'start-drill' || handler === 'report-backup-age')
    return drDrillRequestsOf(command, handler, d, c);
  if (handler === 'record-dr-backup') {
    // The recorder reads the pin, the proposal and the artifacts, and writes the manifest (and deletes nothing:
    // the bundle's repository code can).
    if (command.client === 's3') {
      if (command.operation === 'DeleteObject' || command.operation === 'ListObjectVersions') return [];
      const manifest = `${c.prefix}backups/${backupId}/manifest.json`;
      const keys =
        command.operation === 'PutObject'
          ? [manifest]
          : [
              `${c.prefix}cluster.json`,
              `${c.prefix}backups/${backupId}/${proposedManifestName}`,
              `${c.prefix}backups/${backupId}/backup_label`,
              manifest,
            ];
      return s3Requests('own', command.operation, at.bucketArn, at.keyArn, at.region, keys, c.prefix);
    }
    if (`${command.client}:${command.operation}` === 'ec2:DescribeSnapshots')
      return [own({ action: 'ec2:DescribeSnapshots', resource: '*' })];
    throw new Error(`${command.client}:${command.operation} (sent by DR ${handler}) is not in the table`);
  }
  if (!['apply-retention', 'start-drill', 'report-backup-age', 'record-dr-backup'].includes(handler))
    throw new Error(`${handler} in the DR stack is not in the table`);
  if (command.client === 's3') {
    // Retention reads and deletes; it never writes (the bundle's repository code can), nor lists versions.
    if (command.operation === 'ListObjectVersions' || command.operation === 'PutObject') return [];
    const keys = [
      `${c.prefix}cluster.json`,
      `${c.prefix}backups/${backupId}/manifest.json`,
      `${c.prefix}wal/000000010000000000000003.zst`,
    ];
    return [
      ...s3Requests('own', command.operation, at.bucketArn, at.keyArn, at.region, keys, c.prefix),
      // Its policies are in the DR catalog.
      ...catalogReadOf(command, handler, d.drBucketArn, d.drKeyArn, drRegion, d.drCatalogKey),
    ];
  }
  const ownedBy = { [`aws:ResourceTag/${snapshotTags.cluster}`]: c.name };
  switch (`${command.client}:${command.operation}`) {
    case 'ec2:DescribeSnapshots':
    case 'ec2:DescribeLockedSnapshots':
      return [own({ action: `ec2:${command.operation}`, resource: '*' })];
    case 'ec2:DeleteSnapshot':
      return [own({ action: 'ec2:DeleteSnapshot', resource: c.drSnapshotArn, context: ownedBy })];
    default:
      throw new Error(`${command.client}:${command.operation} (sent by DR ${handler}) is not in the table`);
  }
}

/**
 * DR drills' Lambdas: start-drill starts the DR restore state machine; the DR report-backup-age reads the DR
 * repository's manifests and restore records (days since the last DR drill) and writes nothing there.
 */
function drDrillRequestsOf(command: SentCommand, handler: string, d: Deployed, c: ClusterScope): Sent[] {
  const at = drPlace(d, c);
  const own = (request: IamRequest): Sent => ({ as: 'own', request });
  const key = `${command.client}:${command.operation}`;
  if (handler === 'start-drill') {
    if (key !== 'sfn:StartExecution') throw new Error(`${key} (sent by DR ${handler}) is not in the table`);
    return [own({ action: 'states:StartExecution', resource: d.drRestoreStateMachineArn })];
  }
  if (command.client === 's3') {
    if (['PutObject', 'DeleteObject', 'ListObjectVersions'].includes(command.operation)) return [];
    const keys = [`${c.prefix}backups/${backupId}/manifest.json`, `${c.prefix}restores/${restoreId}.json`];
    return s3Requests(
      'own',
      command.operation,
      at.bucketArn,
      at.keyArn,
      at.region,
      keys,
      `${c.prefix}backups/`,
    );
  }
  // The DR reporter is given no host to watch (no watchArchiving cluster), so it never asks for archive lag.
  if (key === 'cloudwatch:GetMetricData') return [];
  if (key !== 'cloudwatch:PutMetricData')
    throw new Error(`${key} (sent by DR ${handler}) is not in the table`);
  return [
    own({
      action: 'cloudwatch:PutMetricData',
      resource: '*',
      context: { 'cloudwatch:namespace': backupMetrics.namespace },
    }),
  ];
}

/**
 * The cluster catalog's requests: its writer puts the new one and deletes the old, the first steps and
 * start-fleet read it (with the repository objects prepare-restore reads besides). Undefined: not a catalog request.
 */
function catalogRequestsOf(
  command: SentCommand,
  handler: string,
  bucketArn: string,
  keyArn: string,
  region: string,
  catalogKey: string,
): Sent[] | undefined {
  if (command.client !== 's3') return undefined;
  if (handler === 'write-catalog') {
    const old = `${catalogKey.slice(0, catalogKey.lastIndexOf('-') + 1)}0000000000000000.json`;
    if (command.operation === 'DeleteObject')
      return s3Requests('own', 'DeleteObject', bucketArn, keyArn, region, [old], '');
    return s3Requests('own', command.operation, bucketArn, keyArn, region, [catalogKey], '').map((sent) =>
      sent.request.action === 's3:PutObject'
        ? { ...sent, request: { action: 's3:PutObject', resource: sent.request.resource } }
        : sent,
    );
  }
  if (command.operation !== 'GetObject') return undefined;
  // acquire-copy-budget reads nothing from S3 but the catalog (each copied cluster's DR repository).
  if (
    handler === 'start-fleet' ||
    handler === 'prepare-backup' ||
    handler === 'acquire-copy-budget' ||
    handler === 'vend-credentials'
  ) {
    return s3Requests('own', 'GetObject', bucketArn, keyArn, region, [catalogKey], '');
  }
  return undefined;
}

/**
 * prepare-restore, the copy steps (each copied cluster's DR repository) and report-backup-age (the freshness
 * list) read the catalog beside the repository's objects.
 */
const catalogReaders = new Set([
  'prepare-restore',
  'copy-snapshots',
  'check-copies',
  'record-copies',
  'report-backup-age',
  'apply-retention',
]);

/**
 * start-retention reads its side's catalog and invokes that side's apply-retention; it lists a repository only
 * for clusters found by tags (none in this deployment), and its bundle's other S3 calls are never made.
 */
function startRetentionRequestsOf(
  command: SentCommand,
  functions: Deployed['functions'],
  catalogKey: string,
  d: Deployed,
  dr = false,
): Sent[] {
  const own = (request: IamRequest): Sent => ({ as: 'own', request });
  if (command.client === 'lambda' && command.operation === 'Invoke') {
    const apply = functions.find((f) => f.handler === 'apply-retention')!;
    return [own({ action: 'lambda:InvokeFunction', resource: apply.arn })];
  }
  if (command.client === 's3' && command.operation === 'GetObject') {
    return dr
      ? s3Requests('own', 'GetObject', d.drBucketArn, d.drKeyArn, drRegion, [catalogKey], '')
      : s3Requests('own', 'GetObject', d.sourceBucketArn, d.sourceKeyArn, source.region, [catalogKey], '');
  }
  if (command.client === 's3') return [];
  throw new Error(`${command.client}:${command.operation} (sent by start-retention) is not in the table`);
}

function catalogReadOf(
  command: SentCommand,
  handler: string,
  bucketArn: string,
  keyArn: string,
  region: string,
  catalogKey: string,
): Sent[] {
  if (!catalogReaders.has(handler) || command.client !== 's3' || command.operation !== 'GetObject') return [];
  return s3Requests('own', 'GetObject', bucketArn, keyArn, region, [catalogKey], '');
}
