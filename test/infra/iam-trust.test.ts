/**
 * The "cannot"s of DESIGN.md's trust rule, evaluated over both synthesized
 * stacks as AWS would decide them (test/support/iam.ts): a restore target
 * writes nothing; the source's principals in DR (the copier, the role it
 * assumes, the replication role) write no WAL and no restore record there;
 * the DR bucket keeps WAL, the pin and artifacts write-once as the source
 * bucket does; a restore makes volumes only from snapshots tagged with a
 * cluster it restores. And the smaller guards: no bucket takes ACLs, and
 * every Scheduler role trusts only this account's schedules.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { snapshotTags } from '#domain/ebs/snapshots';
import { restoreTags } from '#domain/restore/volumes';
import type { IamRequest, Principal } from '../support/iam.ts';
import { type Deployed, deploy, drRegion, modes, source } from '../support/iam-deployment.ts';
import { restoreId } from '../support/iam-restore-requests.ts';
import { backupId } from '../support/iam-s3-requests.ts';

const administrator = (account: string): Principal => ({
  name: `an administrator of ${account}`,
  arn: `arn:aws:iam::${account}:role/admin`,
  account,
  policies: [
    {
      name: 'admin',
      policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] },
    },
  ],
});

/** Every request in `requests` that `principal` is allowed. */
async function allowedOf(d: Deployed, principal: Principal, requests: IamRequest[]): Promise<string[]> {
  const allowed: string[] = [];
  for (const request of requests) {
    if ((await d.world.decide(principal, request)) === 'Allowed')
      allowed.push(`${principal.name}: ${request.action} on ${request.resource}`);
  }
  return allowed;
}

const writeOnceKeys = [
  'cluster.json',
  'wal/000000010000000000000003.zst',
  'wal/00000002.history.zst',
  `backups/${backupId}/backup_label`,
  `backups/${backupId}/tablespace_map`,
  `backups/${backupId}.backup`,
];

for (const [mode, input] of Object.entries(modes)) {
  describe(mode, () => {
    let d: Deployed;
    beforeAll(() => {
      d = deploy(input);
    });

    it('a restore target may read its cluster’s repository and answer its task, and writes nothing anywhere', async () => {
      const places = [
        ...d.restoreTargets.map((target, i) => ({
          target,
          c: d.clusters[i]!,
          bucket: d.sourceBucketArn,
          key: d.sourceKeyArn,
          region: source.region,
          account: source.account,
        })),
        ...d.drRestoreTargets.map((target) => {
          const c = d.clusters.find((c) => target.name.endsWith(` ${c.name}`))!;
          return {
            target,
            c,
            bucket: d.drBucketArn,
            key: d.drKeyArn,
            region: drRegion,
            account: d.drAccount,
          };
        }),
      ];
      expect(places.length).toBeGreaterThan(d.clusters.length);
      for (const { target, c, bucket, key, region, account } of places) {
        const viaS3 = { 'kms:ViaService': `s3.${region}.amazonaws.com` };
        const reads: IamRequest[] = [
          { action: 'states:SendTaskSuccess', resource: '*' },
          { action: 'states:SendTaskFailure', resource: '*' },
          { action: 'states:SendTaskHeartbeat', resource: '*' },
          { action: 's3:GetObject', resource: `${bucket}/${c.prefix}restores/${restoreId}.json` },
          { action: 's3:GetObject', resource: `${bucket}/${c.prefix}backups/${backupId}/manifest.json` },
          { action: 's3:GetObject', resource: `${bucket}/${c.prefix}wal/000000010000000000000003.zst` },
          { action: 's3:ListBucket', resource: bucket, context: { 's3:prefix': `${c.prefix}wal/` } },
          { action: 's3:ListBucketVersions', resource: bucket, context: { 's3:prefix': `${c.prefix}wal/x` } },
          { action: 'kms:Decrypt', resource: key, context: viaS3 },
        ];
        for (const request of reads) {
          expect(await d.world.decide(target, request), `${target.name}: ${request.action}`).toBe('Allowed');
        }
        const objects = [
          ...writeOnceKeys,
          `backups/${backupId}/manifest.json`,
          `restores/${restoreId}.json`,
        ].map((k) => `${bucket}/${c.prefix}${k}`);
        const writes: IamRequest[] = [
          ...objects.flatMap((resource) =>
            [
              's3:PutObject',
              's3:DeleteObject',
              's3:DeleteObjectVersion',
              's3:PutObjectTagging',
              's3:PutObjectAcl',
              's3:PutObjectRetention',
            ].flatMap((action) => [
              { action, resource },
              { action, resource, context: { 's3:if-none-match': '*' } },
            ]),
          ),
          { action: 's3:PutBucketPolicy', resource: bucket },
          { action: 'kms:GenerateDataKey', resource: key, context: viaS3 },
          { action: 'kms:Encrypt', resource: key, context: viaS3 },
          {
            action: 'ec2:CreateVolume',
            resource: c.sourceSnapshotArn,
            context: { [`aws:ResourceTag/${snapshotTags.cluster}`]: c.name },
          },
          { action: 'ec2:CreateSnapshots', resource: c.instanceArn },
          { action: 'ec2:DeleteSnapshot', resource: c.drSnapshotArn },
          { action: 'ec2:CreateTags', resource: c.volumeArn },
          { action: 'ssm:SendCommand', resource: d.documentArn },
          { action: 'states:StartExecution', resource: d.stateMachineArn },
          {
            action: 'cloudwatch:PutMetricData',
            resource: '*',
            context: { 'cloudwatch:namespace': 'pgsnap/hosts' },
          },
          { action: 'iam:PassRole', resource: `arn:aws:iam::${account}:role/pgsnap-drill` },
        ];
        expect(await allowedOf(d, target, writes)).toEqual([]);
      }
    });

    it('the source’s principals in DR write neither WAL nor restore records there, whatever their own policies say', async () => {
      const replication = d.world.roles.find((r) => r.name.endsWith('-wal-replication'));
      const actors = [d.copier, d.drActor, ...(replication ? [replication] : [])];
      // The source account's own policies could allow anything: the DR bucket's policy decides.
      const unbounded = actors.map((a) => ({
        ...a,
        policies: [...a.policies, ...administrator(a.account).policies],
      }));
      const copied = d.clusters.filter((c) => d.drRestoreTargets.some((t) => t.name.endsWith(` ${c.name}`)));
      expect(copied.length).toBeGreaterThan(0);
      const requests: IamRequest[] = copied.flatMap((c) =>
        [
          `restores/${restoreId}.json`,
          'wal/000000010000000000000003.zst',
          'wal/00000002.history.zst',
        ].flatMap((key) => {
          const resource = `${d.drBucketArn}/${c.prefix}${key}`;
          return [
            { action: 's3:PutObject', resource },
            { action: 's3:PutObject', resource, context: { 's3:if-none-match': '*' } },
            ...(key.startsWith('restores/') ? [{ action: 's3:ReplicateObject', resource }] : []),
          ];
        }),
      );
      for (const actor of [...actors, ...(d.crossAccount ? [] : unbounded)]) {
        expect(await allowedOf(d, actor, requests)).toEqual([]);
      }
      // Across accounts even an unbounded source principal gets nothing the bucket does not grant it.
      if (d.crossAccount) {
        for (const actor of unbounded) expect(await allowedOf(d, actor, requests)).toEqual([]);
      }
      // What the copy itself needs stays allowed: artifacts and the pin written once.
      for (const c of copied) {
        expect(
          await d.world.decide(d.drActor, {
            action: 's3:PutObject',
            resource: `${d.drBucketArn}/${c.prefix}backups/${backupId}/backup_label`,
            context: { 's3:if-none-match': '*' },
          }),
        ).toBe('Allowed');
      }
    });

    it('the DR bucket keeps WAL, the pin and artifacts write-once, whoever writes, and the copy never deletes them', async () => {
      const copied = d.clusters.filter((c) => d.drRestoreTargets.some((t) => t.name.endsWith(` ${c.name}`)));
      const writers = [d.drActor, d.copier, administrator(d.drAccount), ...d.drFunctions.map((f) => f.role)];
      for (const c of copied) {
        for (const key of writeOnceKeys) {
          const resource = `${d.drBucketArn}/${c.prefix}${key}`;
          for (const writer of writers) {
            expect(
              await d.world.decide(writer, { action: 's3:PutObject', resource }),
              `${writer.name}: an overwriting PutObject of ${key}`,
            ).toBe('ExplicitlyDenied');
          }
          for (const writer of [d.drActor, d.copier]) {
            for (const action of ['s3:DeleteObject', 's3:DeleteObjectVersion']) {
              expect(
                await d.world.decide(writer, { action, resource }),
                `${writer.name}: ${action} ${key}`,
              ).not.toBe('Allowed');
            }
          }
        }
      }
    });

    it('a restore makes volumes only from snapshots tagged with a cluster it restores, at the source and in DR', async () => {
      const creators = [
        ...d.functions.filter((f) => f.handler === 'create-restore-volumes').map((f) => ({ f, dr: false })),
        ...d.drFunctions.filter((f) => f.handler === 'create-restore-volumes').map((f) => ({ f, dr: true })),
      ];
      expect(creators.length).toBe(2);
      for (const { f, dr } of creators) {
        const snapshot = dr ? d.clusters[0]!.drSnapshotArn : d.clusters[0]!.sourceSnapshotArn;
        const createFrom = (cluster: string | undefined) =>
          d.world.decide(f.role, {
            action: 'ec2:CreateVolume',
            resource: snapshot,
            context: cluster ? { [`aws:ResourceTag/${snapshotTags.cluster}`]: cluster } : {},
          });
        expect(await createFrom(d.clusters[0]!.name)).toBe('Allowed');
        expect(await createFrom('payments-db'), `${f.role.name}: another cluster's snapshot`).not.toBe(
          'Allowed',
        );
        expect(await createFrom(undefined), `${f.role.name}: an untagged snapshot`).not.toBe('Allowed');
        // The volume it makes carries the restore's tags, or it is not made.
        const volume = `arn:aws:ec2:${dr ? drRegion : source.region}:${dr ? d.drAccount : source.account}:volume/*`;
        expect(
          await d.world.decide(f.role, {
            action: 'ec2:CreateVolume',
            resource: volume,
            context: { [`aws:RequestTag/${restoreTags.cluster}`]: d.clusters[0]!.name },
          }),
        ).not.toBe('Allowed');
      }
    });

    it('no bucket of either stack accepts ACLs (bucket owner enforced)', () => {
      const buckets = d.world.templates.flatMap((t) => t.ofType('AWS::S3::Bucket'));
      expect(buckets.length).toBeGreaterThanOrEqual(4);
      for (const [id, bucket] of buckets) {
        expect(bucket.Properties?.OwnershipControls, id).toEqual({
          Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }],
        });
        expect(bucket.Properties?.AccessControl, id).toBeUndefined();
      }
    });

    it('every role EventBridge Scheduler assumes trusts only this account’s schedules (aws:SourceAccount)', () => {
      let schedulerRoles = 0;
      for (const t of d.world.templates) {
        for (const [id, role] of t.ofType('AWS::IAM::Role')) {
          const trust = t.resolve(role.Properties?.AssumeRolePolicyDocument) as {
            Statement: Array<{ Principal?: { Service?: string | string[] }; Condition?: unknown }>;
          };
          for (const statement of trust.Statement) {
            if (![statement.Principal?.Service ?? []].flat().includes('scheduler.amazonaws.com')) continue;
            schedulerRoles++;
            expect(statement.Condition, id).toEqual({
              StringEquals: { 'aws:SourceAccount': t.where.account },
            });
          }
        }
      }
      expect(schedulerRoles).toBeGreaterThanOrEqual(3);
    });
  });
}
