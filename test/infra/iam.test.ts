/**
 * IAM evaluated, not assumed (issue 18): both stacks of an environment,
 * synthesized and resolved to concrete ARNs, with every request the code
 * sends decided by an IAM policy evaluator (@cloud-copilot/iam-simulate)
 * against the sender's identity policies together with the resource's own
 * policy (KMS key policy, bucket policy, trust policy), as AWS decides it.
 *
 * What each Lambda sends is read from its bundle (test/support/sent-commands.ts);
 * where each command goes (which ARN, which condition keys AWS sets) is the
 * table `requestsOf` below, which throws on a command it does not know, so a
 * new command cannot go unchecked. The state machine's own requests come
 * from its Task states, the schedules' from their targets.
 *
 * Not modelled: KMS grants (cross-account, the DR role uses the source volume
 * key only through the grant copy-snapshots creates; the grant itself is
 * checked as the copier's kms:CreateGrant), SCPs, and S3 replication, which
 * S3 itself performs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, type CfnElement, type Stack } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { grantOperations } from '#domain/ebs/dr-copies';
import { snapshotTags } from '#domain/ebs/snapshots';
import { restoreTags } from '#domain/restore/volumes';
import { BackupFunction } from '../../infra/backup-function.ts';
import { type EnvironmentInput, environmentSchema } from '../../infra/config.ts';
import { drNames } from '../../infra/dr-config.ts';
import { DrStack } from '../../infra/dr-stack.ts';
import { backupMetrics, hostMetrics } from '../../infra/metrics-and-events.ts';
import { PgsnapStack } from '../../infra/pgsnap-stack.ts';
import { ResolvedTemplate } from '../support/cloudformation.ts';
import { type IamRequest, IamWorld, type Principal, rolesOf } from '../support/iam.ts';
import { type SentCommand, sentCommands } from '../support/sent-commands.ts';

const source = { account: '111122223333', region: 'eu-west-1' };
const drAccount = '444455556666';
const drRegion = 'us-west-2';
const externalId = 'pgsnap-prod-7f3a9c2e';

function environment(dr: Record<string, unknown>): EnvironmentInput {
  return {
    name: 'prod',
    ...source,
    clusters: [
      {
        name: 'orders-db',
        instance: { instanceId: 'i-0123456789abcdef0' },
        volumeIds: ['vol-0a1b2c3d4e5f60001'],
        repository: { prefix: 'pgsnap/' },
        retention: { keepLast: 7, dr: { keepDays: 35 } },
      },
      {
        name: 'billing-db',
        instance: { tags: { 'pgsnap:cluster': 'billing-db', role: 'primary' } },
        repository: { prefix: 'pgsnap/' },
        retention: { keepLast: 3 },
      },
    ],
    dr: dr as EnvironmentInput['dr'],
  };
}

const modes = {
  'same-account DR (another region)': environment({ region: drRegion }),
  'cross-account DR': environment({
    account: drAccount,
    region: drRegion,
    externalId,
    snapshotLock: { mode: 'governance', days: 35 },
  }),
};

/** One cluster as the requests name it. */
interface ClusterScope {
  name: string;
  instanceArn: string;
  /** The tags a host selected by tags carries (aws:ResourceTag on the instance). */
  instanceTags: Record<string, string>;
  volumeArn: string;
  sourceSnapshotArn: string;
  drSnapshotArn: string;
  /** `pgsnap/orders-db/` */
  prefix: string;
}

interface Deployed {
  world: IamWorld;
  crossAccount: boolean;
  /** The configured DR snapshot lock, if any. */
  snapshotLock: { mode: string; days: number } | undefined;
  sourceTemplate: ResolvedTemplate;
  functions: Array<{ handler: string; role: Principal }>;
  /** The DR stack's Lambdas (DR retention, restore from the DR copies), each acting as the DR account. */
  drFunctions: Array<{ handler: string; role: Principal }>;
  /** The roles the source stack makes: none of them may delete anything in DR. */
  sourceRoles: Principal[];
  stateMachineRole: Principal;
  copier: Principal;
  /** The role that acts in DR: the DR account's copy role, or the copier itself in the same account. */
  drActor: Principal;
  drRoleArn: string;
  /** The database host of each cluster, with that cluster's host policy attached to its role. */
  hosts: Principal[];
  clusters: ClusterScope[];
  sourceBucketArn: string;
  sourceKeyArn: string;
  drAccount: string;
  drBucketArn: string;
  drKeyArn: string;
  /** A customer managed key of the source account that encrypts the volumes (not in the templates). */
  volumeKeyArn: string;
  documentArn: string;
  stateMachineArn: string;
}

function logicalIdOf(stack: Stack, construct: IConstruct): string {
  return stack.getLogicalId((construct.node.defaultChild ?? construct) as CfnElement);
}

function deploy(input: EnvironmentInput): Deployed {
  const outdir = mkdtempSync(join(tmpdir(), 'pgsnap-iam-'));
  try {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] }, outdir });
    const parsed = environmentSchema.parse(input);
    const sourceStack = new PgsnapStack(app, 'pgsnap-prod', { environment: parsed });
    const drStack = new DrStack(app, 'pgsnap-prod-dr', { environment: parsed });
    const assembly = app.synth();
    const names = drNames(parsed, parsed.dr!);
    const sourceTemplate = new ResolvedTemplate(assembly.getStackByName(sourceStack.stackName).template, {
      ...source,
      stackName: sourceStack.stackName,
    });
    const drTemplate = new ResolvedTemplate(assembly.getStackByName(drStack.stackName).template, {
      account: names.account,
      region: drRegion,
      stackName: drStack.stackName,
    });
    const volumeKeyArn = `arn:aws:kms:${source.region}:${source.account}:key/0b5e7c1d-2f3a-4b6c-8d9e-0f1a2b3c4d5e`;
    const world = new IamWorld([sourceTemplate, drTemplate], {
      // The default key policy: the account's IAM policies decide.
      [volumeKeyArn]: {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { AWS: `arn:aws:iam::${source.account}:root` },
            Action: 'kms:*',
            Resource: '*',
          },
        ],
      },
    });
    const roleOf = (construct: IConstruct, template = sourceTemplate, stack: Stack = sourceStack) => {
      const arn = template.getAtt(logicalIdOf(stack, construct), 'Arn');
      const role = world.roles.find((r) => r.arn === arn);
      if (!role) throw new Error(`no role ${arn}`);
      return role;
    };
    const functions = sourceStack.node
      .findAll()
      .filter((c): c is BackupFunction => c instanceof BackupFunction)
      .map((fn) => ({ handler: fn.handlerName, role: roleOf(fn.role!) }));
    const drFunctions = drStack.node
      .findAll()
      .filter((c): c is BackupFunction => c instanceof BackupFunction)
      .map((fn) => ({ handler: fn.handlerName, role: roleOf(fn.role!, drTemplate, drStack) }));
    const pgsnap = sourceStack.pgsnap;
    const copier = world.roles.find((r) => r.name === names.copierRoleName)!;
    const drRoleArn = `arn:aws:iam::${names.account}:role/${names.roleName}`;
    const crossAccount = names.account !== source.account;
    const clusters = parsed.clusters.map((c, index) => ({
      name: c.name,
      instanceArn: `arn:aws:ec2:${source.region}:${source.account}:instance/${
        'instanceId' in c.instance ? c.instance.instanceId : `i-0ffffffffffff000${index}`
      }`,
      instanceTags: 'tags' in c.instance ? c.instance.tags : {},
      volumeArn: `arn:aws:ec2:${source.region}:${source.account}:volume/vol-0a1b2c3d4e5f6000${index}`,
      sourceSnapshotArn: `arn:aws:ec2:${source.region}::snapshot/snap-0a1b2c3d4e5f6000${index}`,
      drSnapshotArn: `arn:aws:ec2:${drRegion}::snapshot/snap-0d1b2c3d4e5f6000${index}`,
      prefix: `${c.repository.prefix}${c.name}/`,
    }));
    return {
      world,
      crossAccount,
      snapshotLock: parsed.dr?.snapshotLock,
      sourceTemplate,
      functions,
      drFunctions,
      sourceRoles: rolesOf(sourceTemplate),
      stateMachineRole: roleOf(pgsnap.backup.stateMachine.role),
      copier,
      drActor: crossAccount ? world.roles.find((r) => r.arn === drRoleArn)! : copier,
      drRoleArn,
      hosts: parsed.clusters.map((c) => ({
        name: `the database host of ${c.name}`,
        arn: `arn:aws:iam::${source.account}:role/${c.name}-host`,
        account: source.account,
        policies: [
          {
            name: `AgentHostPolicy-${c.name}`,
            policy: sourceTemplate.resolve(
              sourceTemplate.resource(logicalIdOf(sourceStack, pgsnap.hostPolicy.policies.get(c.name)!))
                .Properties?.PolicyDocument,
            ) as never,
          },
        ],
      })),
      clusters,
      sourceBucketArn: sourceTemplate.getAtt(logicalIdOf(sourceStack, pgsnap.repository.bucket), 'Arn'),
      sourceKeyArn: sourceTemplate.getAtt(logicalIdOf(sourceStack, pgsnap.repository.key!), 'Arn'),
      drAccount: names.account,
      drBucketArn: `arn:aws:s3:::${names.bucketName}`,
      drKeyArn: drTemplate.getAtt(logicalIdOf(drStack, drStack.key), 'Arn'),
      volumeKeyArn,
      documentArn: `arn:aws:ssm:${source.region}:${source.account}:document/${sourceTemplate.ref(
        logicalIdOf(sourceStack, pgsnap.document.node.findChild('Document')),
      )}`,
      stateMachineArn: `arn:aws:states:${source.region}:${source.account}:stateMachine:pgsnap-prod-backup`,
    };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

/** Who sends a request: the role under test, or the role that acts in DR on its behalf. */
type Sender = 'own' | 'dr';
interface Sent {
  as: Sender;
  request: IamRequest;
}

const backupId = '20260101T030000Z-a1b2c3';
const copierHandlers = new Set(['copy-snapshots', 'check-copies', 'record-copies']);

/** What S3 with SSE-KMS asks of KMS as the requester of a read or a write (bucket keys included). */
function s3Requests(
  as: Sender,
  operation: string,
  bucketArn: string,
  keyArn: string,
  region: string,
  keys: string[],
  listPrefix: string,
): Sent[] {
  // With S3 Bucket Keys, S3 asks KMS with the bucket's ARN as the encryption context.
  const viaS3 = {
    'kms:ViaService': `s3.${region}.amazonaws.com`,
    'kms:EncryptionContext:aws:s3:arn': bucketArn,
  };
  const objects = (action: string) =>
    keys.map((key) => ({ as, request: { action, resource: `${bucketArn}/${key}` } }));
  switch (operation) {
    case 'GetObject':
      return [
        ...objects('s3:GetObject'),
        { as, request: { action: 'kms:Decrypt', resource: keyArn, context: viaS3 } },
      ];
    case 'HeadObject':
      return objects('s3:GetObject');
    case 'PutObject':
      return [
        // Everything but a manifest is written once, with If-None-Match (Repository: putIfAbsent).
        ...keys.map((key) => ({
          as,
          request: {
            action: 's3:PutObject',
            resource: `${bucketArn}/${key}`,
            ...(key.endsWith('/manifest.json') ? {} : { context: { 's3:if-none-match': '*' } }),
          },
        })),
        { as, request: { action: 'kms:GenerateDataKey', resource: keyArn, context: viaS3 } },
      ];
    case 'DeleteObject':
      return objects('s3:DeleteObject');
    case 'ListObjectVersions':
      return keys.map((key) => ({
        as,
        request: { action: 's3:ListBucketVersions', resource: bucketArn, context: { 's3:prefix': key } },
      }));
    case 'ListObjectsV2':
      return [
        {
          as,
          request: { action: 's3:ListBucket', resource: bucketArn, context: { 's3:prefix': listPrefix } },
        },
      ];
    default:
      throw new Error(`s3:${operation} is not in the table of requests; add where it goes`);
  }
}

const restoreHandlers = new Set([
  'prepare-restore',
  'find-restore-instance',
  'check-restore-instance',
  'create-restore-volumes',
  'check-restore-volumes',
  'attach-restore-volumes',
  'record-restore',
  'release-restore-volumes',
  'terminate-restore-instance',
]);
const restoreId = 'r-20260101T040000Z-d0d0d0';

/** Where a restore runs: at the source from the source snapshots, or in DR from the DR copies. */
interface RestorePlace {
  account: string;
  region: string;
  bucketArn: string;
  keyArn: string;
  /** The snapshot the restore makes a volume from, and the key that encrypts it. */
  snapshotArn: string;
  volumeKeyArn: string;
}

function sourcePlace(d: Deployed, c: ClusterScope): RestorePlace {
  return {
    ...source,
    bucketArn: d.sourceBucketArn,
    keyArn: d.sourceKeyArn,
    snapshotArn: c.sourceSnapshotArn,
    volumeKeyArn: d.volumeKeyArn,
  };
}

function drPlace(d: Deployed, c: ClusterScope): RestorePlace {
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
function madeByRestore(c: ClusterScope, at: RestorePlace) {
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
function restoreRequestsOf(
  command: SentCommand,
  handler: string,
  d: Deployed,
  c: ClusterScope,
  at: RestorePlace = sourcePlace(d, c),
): Sent[] {
  const made = madeByRestore(c, at);
  const own = (request: IamRequest): Sent => ({ as: 'own', request });
  if (command.client === 's3') {
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
    case 'ec2:DescribeVolumes':
    case 'ec2:DescribeLaunchTemplateVersions':
      return [own({ action: `ec2:${command.operation}`, resource: '*' })];
    case 'ec2:RunInstances':
      // Per created resource type, each with its own tags (test/infra/iam-aws-semantics.test.ts derives them).
      return [
        own({ action: 'ec2:RunInstances', resource: any('instance'), context: made.requestTags }),
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
function requestsOf(command: SentCommand, handler: string, d: Deployed, c: ClusterScope): Sent[] {
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
  if (restoreHandlers.has(handler)) return restoreRequestsOf(command, handler, d, c);
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
      ? [`${c.prefix}backups/${backupId}/manifest.json`]
      : [`${c.prefix}cluster.json`, `${c.prefix}backups/${backupId}/manifest.json`];
    const listPrefix = manifestOnly ? `${c.prefix}backups/` : c.prefix;
    const sent = s3Requests(
      'own',
      command.operation,
      d.sourceBucketArn,
      d.sourceKeyArn,
      source.region,
      keys,
      listPrefix,
    );
    if (!copierHandlers.has(handler)) return sent;
    // The copy steps read and write, here and in the DR repository (as the DR side), and delete in
    // neither: the bundle's repository code can; only retention deletes, each side its own.
    if (command.operation === 'DeleteObject') return [];
    return [
      ...sent,
      ...s3Requests('dr', command.operation, d.drBucketArn, d.drKeyArn, drRegion, keys, listPrefix),
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
      return [{ as: 'own', request: { action: `states:${command.operation}`, resource: d.stateMachineArn } }];
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
    case 'cloudwatch:PutMetricData':
      // record-backup's durations and report-backup-age's ages, in the state machine's namespace.
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
function drRequestsOf(command: SentCommand, handler: string, d: Deployed, c: ClusterScope): Sent[] {
  const at = drPlace(d, c);
  if (restoreHandlers.has(handler)) return restoreRequestsOf(command, handler, d, c, at);
  if (handler !== 'apply-retention') throw new Error(`${handler} in the DR stack is not in the table`);
  const own = (request: IamRequest): Sent => ({ as: 'own', request });
  if (command.client === 's3') {
    // Retention reads and deletes; it never writes (the bundle's repository code can), nor lists versions.
    if (command.operation === 'ListObjectVersions' || command.operation === 'PutObject') return [];
    const keys = [
      `${c.prefix}cluster.json`,
      `${c.prefix}backups/${backupId}/manifest.json`,
      `${c.prefix}wal/000000010000000000000003.zst`,
    ];
    return s3Requests('own', command.operation, at.bucketArn, at.keyArn, at.region, keys, c.prefix);
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

for (const [mode, input] of Object.entries(modes)) {
  describe(mode, () => {
    let d: Deployed;
    const sent = new Map<string, SentCommand[]>();
    beforeAll(async () => {
      d = deploy(input);
      for (const { handler } of d.functions) {
        if (!sent.has(handler)) sent.set(handler, await sentCommands(`functions/${handler}.ts`));
      }
    });

    it('every handler in functions/ is deployed, so none goes unchecked', async () => {
      const { readdirSync } = await import('node:fs');
      const files = readdirSync(join(import.meta.dirname, '..', '..', 'functions'))
        .filter((f) => f.endsWith('.ts'))
        .map((f) => f.slice(0, -3));
      expect(new Set(d.functions.map((f) => f.handler))).toEqual(new Set(files));
    });

    it('each Lambda may send every command its code sends, to the resources it sends it to', async () => {
      const refused: string[] = [];
      for (const { handler, role } of d.functions) {
        for (const command of sent.get(handler)!) {
          for (const cluster of d.clusters) {
            for (const { as, request } of requestsOf(command, handler, d, cluster)) {
              const principal = as === 'own' ? role : d.drActor;
              const decision = await d.world.decide(principal, request);
              if (decision !== 'Allowed') {
                refused.push(
                  `${handler} (${principal.name}): ${request.action} on ${request.resource} → ${decision}`,
                );
              }
            }
          }
        }
      }
      expect(refused).toEqual([]);
    });

    it('each Lambda of the DR stack may send every command its code sends, as the DR account', async () => {
      expect(new Set(d.drFunctions.map((f) => f.handler))).toEqual(
        new Set(['apply-retention', ...restoreHandlers]),
      );
      const refused: string[] = [];
      for (const { handler, role } of d.drFunctions) {
        for (const command of await sentCommands(`functions/${handler}.ts`)) {
          for (const cluster of d.clusters) {
            for (const { request } of drRequestsOf(command, handler, d, cluster)) {
              const decision = await d.world.decide(role, request);
              if (decision !== 'Allowed')
                refused.push(`DR ${handler}: ${request.action} on ${request.resource} → ${decision}`);
            }
          }
        }
      }
      expect(refused).toEqual([]);
    });

    it('no role of the source stack may delete a DR copy or a DR object; across accounts, not even with all of S3 in its own policies', async () => {
      const allowed: string[] = [];
      const parsed = environmentSchema.parse(input);
      const replication = d.world.roles.find(
        (r) => r.name === drNames(parsed, parsed.dr!).replicationRoleName,
      )!;
      // The DR bucket's policy denies these by name, in either mode; across accounts it grants no other
      // principal of the source account anything, so their own policies cannot reach it.
      const deniedByName = new Set([d.copier.arn, replication.arn, d.drActor.arn]);
      const mightyInS3 = (principal: Principal): Principal => ({
        ...principal,
        policies: [
          ...principal.policies,
          {
            name: 'all of s3',
            policy: {
              Version: '2012-10-17',
              Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }],
            },
          },
        ],
      });
      const actors = [...d.sourceRoles, ...(d.crossAccount ? [d.drActor] : [])];
      expect(actors.map((a) => a.arn)).toContain(d.copier.arn);
      for (const principal of actors) {
        for (const c of d.clusters) {
          const ownedBy = { [`aws:ResourceTag/${snapshotTags.cluster}`]: c.name };
          const deleteCopy = { action: 'ec2:DeleteSnapshot', resource: c.drSnapshotArn, context: ownedBy };
          if ((await d.world.decide(principal, deleteCopy)) === 'Allowed')
            allowed.push(`${principal.name}: ec2:DeleteSnapshot on ${c.drSnapshotArn}`);
          for (const key of ['wal/000000010000000000000003.zst', `backups/${backupId}/manifest.json`]) {
            const resource = `${d.drBucketArn}/${c.prefix}${key}`;
            for (const action of ['s3:DeleteObject', 's3:DeleteObjectVersion']) {
              const asked =
                d.crossAccount || deniedByName.has(principal.arn) ? mightyInS3(principal) : principal;
              if ((await d.world.decide(asked, { action, resource })) === 'Allowed')
                allowed.push(`${principal.name}: ${action} on ${resource}`);
            }
          }
        }
      }
      expect(allowed).toEqual([]);
    });

    it('retention deletes current objects only: neither side may delete an object version or write', async () => {
      const source = d.functions.find((f) => f.handler === 'apply-retention')!.role;
      const dr = d.drFunctions.find((f) => f.handler === 'apply-retention')!.role;
      const allowed: string[] = [];
      for (const c of d.clusters) {
        for (const [role, bucketArn] of [
          [source, d.sourceBucketArn],
          [dr, d.drBucketArn],
        ] as const) {
          const wal = `${bucketArn}/${c.prefix}wal/000000010000000000000003.zst`;
          expect(await d.world.decide(role, { action: 's3:DeleteObject', resource: wal })).toBe('Allowed');
          for (const action of ['s3:DeleteObjectVersion', 's3:PutObject', 's3:PutObjectRetention']) {
            if ((await d.world.decide(role, { action, resource: wal })) === 'Allowed')
              allowed.push(`${role.name}: ${action} on ${wal}`);
          }
        }
      }
      expect(allowed).toEqual([]);
    });

    it('DR retention, in the DR account, may delete its clusters’ DR copies and objects, and nothing else', async () => {
      const retention = d.drFunctions.find((f) => f.handler === 'apply-retention')!.role;
      expect(retention.account).toBe(d.drAccount);
      const [orders] = d.clusters;
      const ownedBy = (cluster: string) => ({ [`aws:ResourceTag/${snapshotTags.cluster}`]: cluster });
      const decide = (request: IamRequest) => d.world.decide(retention, request);
      const wal = `${d.drBucketArn}/${orders!.prefix}wal/000000010000000000000003.zst`;
      expect(
        await decide({
          action: 'ec2:DeleteSnapshot',
          resource: orders!.drSnapshotArn,
          context: ownedBy('orders-db'),
        }),
      ).toBe('Allowed');
      expect(await decide({ action: 's3:DeleteObject', resource: wal })).toBe('Allowed');
      for (const request of [
        // A snapshot of no retained cluster, or untagged; a source snapshot; an old object version.
        { action: 'ec2:DeleteSnapshot', resource: orders!.drSnapshotArn, context: ownedBy('other-db') },
        { action: 'ec2:DeleteSnapshot', resource: orders!.drSnapshotArn },
        { action: 'ec2:DeleteSnapshot', resource: orders!.sourceSnapshotArn, context: ownedBy('orders-db') },
        { action: 's3:DeleteObjectVersion', resource: wal },
        {
          action: 's3:DeleteObject',
          resource: `${d.drBucketArn}/other/other-db/wal/000000010000000000000003.zst`,
        },
        { action: 's3:PutBucketVersioning', resource: d.drBucketArn },
        { action: 'ec2:UnlockSnapshot', resource: orders!.drSnapshotArn, context: ownedBy('orders-db') },
      ]) {
        expect(await decide(request), `${request.action} on ${request.resource}`).not.toBe('Allowed');
      }
    });

    it('a restore can delete, detach or terminate only what a restore made: never a source volume or the database host', async () => {
      const refused: string[] = [];
      const allowed: string[] = [];
      const role = (handler: string) => d.functions.find((f) => f.handler === handler)!.role;
      for (const c of d.clusters) {
        const sourceTags = { [`aws:ResourceTag/${restoreTags.cluster}`]: c.name };
        for (const [handler, request] of [
          [
            'release-restore-volumes',
            { action: 'ec2:DeleteVolume', resource: c.volumeArn, context: sourceTags },
          ],
          [
            'release-restore-volumes',
            { action: 'ec2:DetachVolume', resource: c.volumeArn, context: sourceTags },
          ],
          [
            'terminate-restore-instance',
            { action: 'ec2:TerminateInstances', resource: c.instanceArn, context: sourceTags },
          ],
          [
            'attach-restore-volumes',
            { action: 'ec2:AttachVolume', resource: c.volumeArn, context: sourceTags },
          ],
        ] as const) {
          const decision = await d.world.decide(role(handler), request);
          (decision === 'Allowed' ? allowed : refused).push(
            `${handler}: ${request.action} on ${request.resource}`,
          );
        }
      }
      expect(allowed).toEqual([]);
      expect(refused.length).toBe(d.clusters.length * 4);
    });

    it('the state machine may invoke, send and announce what its Task states do', async () => {
      const definition = JSON.stringify(
        d.sourceTemplate.resolve(
          d.sourceTemplate.ofType('AWS::StepFunctions::StateMachine')[0]![1].Properties?.DefinitionString,
        ),
      );
      const states = Object.entries(
        (JSON.parse(JSON.parse(definition) as string) as { States: Record<string, Record<string, unknown>> })
          .States,
      ).filter(([, s]) => s.Type === 'Task');
      expect(states.length).toBeGreaterThan(5);
      const refused: string[] = [];
      for (const [name, state] of states) {
        const resource = state.Resource as string;
        const parameters = state.Parameters as Record<string, unknown>;
        const requests: IamRequest[] = resource.startsWith('arn:aws:lambda:')
          ? [{ action: 'lambda:InvokeFunction', resource }]
          : resource.startsWith('arn:aws:states:::lambda:invoke')
            ? [{ action: 'lambda:InvokeFunction', resource: parameters.FunctionName as string }]
            : resource.startsWith('arn:aws:states:::aws-sdk:ssm:sendCommand')
              ? [
                  { action: 'ssm:SendCommand', resource: d.documentArn },
                  ...d.clusters.map((c) => ({
                    action: 'ssm:SendCommand',
                    resource: c.instanceArn,
                    context: Object.fromEntries(
                      Object.entries(c.instanceTags).map(([k, v]) => [`ssm:resourceTag/${k}`, v]),
                    ),
                  })),
                ]
              : resource === 'arn:aws:states:::aws-sdk:cloudwatch:putMetricData'
                ? [{ action: 'cloudwatch:PutMetricData', resource: '*' }]
                : resource === 'arn:aws:states:::events:putEvents'
                  ? [
                      {
                        action: 'events:PutEvents',
                        resource: `arn:aws:events:${source.region}:${source.account}:event-bus/default`,
                      },
                    ]
                  : (() => {
                      throw new Error(`Task state ${name} calls ${resource}, which this test does not know`);
                    })();
        for (const request of requests) {
          const decision = await d.world.decide(d.stateMachineRole, request);
          if (decision !== 'Allowed')
            refused.push(`${name}: ${request.action} on ${request.resource} → ${decision}`);
        }
      }
      expect(refused).toEqual([]);
    });

    it('each schedule may invoke its target', async () => {
      const schedules = d.sourceTemplate.ofType('AWS::Scheduler::Schedule');
      expect(schedules.length).toBeGreaterThan(0);
      for (const [id, schedule] of schedules) {
        const target = d.sourceTemplate.resolve(schedule.Properties?.Target) as {
          Arn: string;
          RoleArn: string;
        };
        const role = d.world.roles.find((r) => r.arn === target.RoleArn)!;
        expect(
          await d.world.decide(role, { action: 'lambda:InvokeFunction', resource: target.Arn }),
          id,
        ).toBe('Allowed');
      }
    });

    it('the database host may answer the state machine, use its own cluster’s repository and publish archive health', async () => {
      const commands = [
        ...(await sentCommands('agent/cli/task-token.ts')),
        ...(await sentCommands('domain/repository/s3-store.ts')),
        ...(await sentCommands('agent/metrics/cloudwatch.ts')),
      ].filter((c) => c.operation !== 'DeleteObject');
      expect(commands).toContainEqual({ client: 'cloudwatch', operation: 'PutMetricData' });
      const refused: string[] = [];
      for (const [index, own] of d.clusters.entries()) {
        const host = d.hosts[index]!;
        for (const command of commands) {
          const requests: IamRequest[] =
            command.client === 'sfn'
              ? // AWS checks these against the state machine of the token (the Service Authorization Reference lists no resource).
                [{ action: `states:${command.operation}`, resource: d.stateMachineArn }]
              : command.client === 'cloudwatch'
                ? [
                    {
                      action: `cloudwatch:${command.operation}`,
                      resource: '*',
                      context: { 'cloudwatch:namespace': hostMetrics.namespace },
                    },
                  ]
                : s3Requests(
                    'own',
                    command.operation,
                    d.sourceBucketArn,
                    d.sourceKeyArn,
                    source.region,
                    [
                      `${own.prefix}cluster.json`,
                      `${own.prefix}wal/000000010000000000000003.zst`,
                      `${own.prefix}backups/${backupId}/backup_label`,
                      `${own.prefix}backups/${backupId}/manifest.json`,
                    ],
                    `${own.prefix}wal/`,
                  ).map((s) => s.request);
          for (const request of requests) {
            const decision = await d.world.decide(host, request);
            if (decision !== 'Allowed')
              refused.push(`${host.name}: ${request.action} on ${request.resource} → ${decision}`);
          }
        }
      }
      expect(refused).toEqual([]);
    });

    it('the database host cannot publish into the backup state machine’s namespace (a forged BackupCompleted)', async () => {
      for (const host of d.hosts) {
        const decision = await d.world.decide(host, {
          action: 'cloudwatch:PutMetricData',
          resource: '*',
          context: { 'cloudwatch:namespace': backupMetrics.namespace },
        });
        expect(decision, host.name).not.toBe('Allowed');
      }
    });

    it('the database host can neither delete nor change any snapshot', async () => {
      for (const host of d.hosts) {
        for (const cluster of d.clusters) {
          for (const action of ['ec2:DeleteSnapshot', 'ec2:ModifySnapshotAttribute', 'ec2:LockSnapshot']) {
            const decision = await d.world.decide(host, {
              action,
              resource: cluster.sourceSnapshotArn,
              context: { [`aws:ResourceTag/${snapshotTags.cluster}`]: cluster.name },
            });
            expect(decision, `${host.name}: ${action} on ${cluster.name}'s snapshot`).not.toBe('Allowed');
          }
        }
      }
    });

    it('the database host of one cluster cannot read, write or list another cluster’s repository objects', async () => {
      const [orders, billing] = d.hosts;
      const allowed: string[] = [];
      for (const [host, other] of [
        [orders!, d.clusters[1]!],
        [billing!, d.clusters[0]!],
      ] as const) {
        const wal = `${d.sourceBucketArn}/${other.prefix}wal/000000010000000000000003.zst`;
        const requests: IamRequest[] = [
          { action: 's3:GetObject', resource: wal },
          { action: 's3:PutObject', resource: wal, context: { 's3:if-none-match': '*' } },
          { action: 's3:PutObject', resource: `${d.sourceBucketArn}/${other.prefix}cluster.json` },
          { action: 's3:DeleteObject', resource: wal },
          {
            action: 's3:ListBucket',
            resource: d.sourceBucketArn,
            context: { 's3:prefix': `${other.prefix}wal/` },
          },
        ];
        for (const request of requests) {
          if ((await d.world.decide(host, request)) === 'Allowed')
            allowed.push(`${host.name}: ${request.action} on ${request.resource}`);
        }
      }
      expect(allowed).toEqual([]);
    });

    it('no database host may delete a repository object, not even its own cluster’s', async () => {
      const allowed: string[] = [];
      for (const [index, host] of d.hosts.entries()) {
        const own = d.clusters[index]!;
        for (const key of [
          'wal/000000010000000000000003.zst',
          `backups/${backupId}/manifest.json`,
          'cluster.json',
        ]) {
          for (const action of ['s3:DeleteObject', 's3:DeleteObjectVersion']) {
            const resource = `${d.sourceBucketArn}/${own.prefix}${key}`;
            if ((await d.world.decide(host, { action, resource })) === 'Allowed')
              allowed.push(`${host.name}: ${action} on ${resource}`);
          }
        }
      }
      expect(allowed).toEqual([]);
    });

    it('the bucket refuses any write of a WAL object, the pin or an artifact that could overwrite one', async () => {
      // Whoever asks, even a principal whose own policy allows everything: the bucket policy denies.
      const anyone: Principal = {
        name: 'an administrator of the source account',
        arn: `arn:aws:iam::${source.account}:role/admin`,
        account: source.account,
        policies: [
          {
            name: 'admin',
            policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] },
          },
        ],
      };
      for (const [index, own] of d.clusters.entries()) {
        for (const key of [
          'wal/000000010000000000000003.zst',
          'wal/00000002.history.zst',
          'cluster.json',
          `backups/${backupId}/backup_label`,
          `backups/${backupId}/000000010000000000000002.00000028.backup`,
        ]) {
          const resource = `${d.sourceBucketArn}/${own.prefix}${key}`;
          for (const principal of [d.hosts[index]!, anyone]) {
            expect(
              await d.world.decide(principal, { action: 's3:PutObject', resource }),
              `${principal.name}: an overwriting PutObject of ${key}`,
            ).toBe('ExplicitlyDenied');
            expect(
              await d.world.decide(principal, {
                action: 's3:PutObject',
                resource,
                context: { 's3:if-none-match': '*' },
              }),
              `${principal.name}: a write-once PutObject of ${key}`,
            ).toBe('Allowed');
          }
        }
        // The manifests change as a backup goes on: they are not write-once.
        expect(
          await d.world.decide(d.hosts[index]!, {
            action: 's3:PutObject',
            resource: `${d.sourceBucketArn}/${own.prefix}backups/${backupId}/manifest.json`,
          }),
        ).toBe('Allowed');
      }
    });

    it('nothing but the state machine’s own role can SendCommand with the agent document', async () => {
      const allowed: string[] = [];
      for (const principal of [...d.world.roles, ...d.hosts]) {
        const decision = await d.world.decide(principal, {
          action: 'ssm:SendCommand',
          resource: d.documentArn,
        });
        if (decision === 'Allowed') allowed.push(principal.name);
      }
      expect(allowed).toEqual([d.stateMachineRole.name]);
    });

    if (input.dr?.account) {
      it('the source’s principals can neither shorten a DR lock nor undo the DR bucket’s history', async () => {
        const allowed: string[] = [];
        const orders = d.clusters[0]!;
        const ownedBy = { [`aws:ResourceTag/${snapshotTags.cluster}`]: orders.name };
        const replication = d.world.roles.find(
          (r) =>
            r.name ===
            drNames(environmentSchema.parse(input), environmentSchema.parse(input).dr!).replicationRoleName,
        );
        expect(replication).toBeDefined();
        const attempts: Array<[Principal, IamRequest]> = [
          [
            d.drActor,
            {
              action: 'ec2:LockSnapshot',
              resource: orders.drSnapshotArn,
              context: { ...ownedBy, 'ec2:SnapshotLockDuration': '1' },
            },
          ],
          [d.drActor, { action: 'ec2:UnlockSnapshot', resource: orders.drSnapshotArn, context: ownedBy }],
          [replication!, { action: 's3:PutBucketVersioning', resource: d.drBucketArn }],
          ...[d.drActor, replication!, d.copier].flatMap(
            (p): Array<[Principal, IamRequest]> => [
              [p, { action: 's3:PutBucketVersioning', resource: d.drBucketArn }],
              [p, { action: 's3:PutLifecycleConfiguration', resource: d.drBucketArn }],
              [p, { action: 's3:PutBucketPolicy', resource: d.drBucketArn }],
              [
                p,
                {
                  action: 's3:DeleteObjectVersion',
                  resource: `${d.drBucketArn}/${orders.prefix}wal/000000010000000000000003.zst`,
                },
              ],
              [
                p,
                {
                  action: 's3:BypassGovernanceRetention',
                  resource: `${d.drBucketArn}/${orders.prefix}backups/${backupId}/manifest.json`,
                },
              ],
            ],
          ),
        ];
        for (const [principal, request] of attempts) {
          // Even with every right in its own account: the DR bucket's policy denies.
          const mighty = request.action.startsWith('s3:')
            ? {
                ...principal,
                policies: [
                  ...principal.policies,
                  {
                    name: 'all',
                    policy: {
                      Version: '2012-10-17',
                      Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }],
                    },
                  },
                ],
              }
            : principal;
          if ((await d.world.decide(mighty, request)) === 'Allowed')
            allowed.push(`${principal.name}: ${request.action} on ${request.resource}`);
        }
        expect(allowed).toEqual([]);
      });

      it('the DR role trusts only the source copier, and only with the external id', async () => {
        const assume = (principal: Principal, context: Record<string, string>) =>
          d.world.decide(
            // Whatever the caller's own policies allow: the trust policy alone must refuse.
            {
              ...principal,
              policies: [
                {
                  name: 'any',
                  policy: {
                    Version: '2012-10-17',
                    Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRole', Resource: '*' }],
                  },
                },
              ],
            },
            { action: 'sts:AssumeRole', resource: d.drRoleArn, context },
          );
        expect(await assume(d.copier, { 'sts:ExternalId': externalId })).toBe('Allowed');
        expect(await assume(d.copier, {})).not.toBe('Allowed');
        expect(await assume(d.copier, { 'sts:ExternalId': 'pgsnap-prod-guessed' })).not.toBe('Allowed');
        for (const other of [
          ...d.world.roles.filter((r) => r.account === source.account && r !== d.copier),
          ...d.hosts,
        ]) {
          expect(await assume(other, { 'sts:ExternalId': externalId }), other.name).not.toBe('Allowed');
        }
      });
    }
  });
}
