/**
 * The drill kits' instance roles as AWS would decide their requests
 * (test/support/iam.ts), at the source and in DR: a drill instance reads its
 * cluster's repository and answers its task, and writes nothing in any
 * repository, because its role holds the restore target policy and nothing
 * of its own (DESIGN.md, "Trust": restore targets hold a read-only policy).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { IamRequest, Principal } from '../support/iam.ts';
import { type Deployed, deploy, drRegion, modes, source } from '../support/iam-deployment.ts';
import { restoreId } from '../support/iam-restore-requests.ts';
import { backupId } from '../support/iam-s3-requests.ts';

const kit = { imageId: 'ami-0123456789abcdef0', vpcId: 'vpc-0123456789abcdef0' };
const drills = (subnet: string) => ({
  schedule: 'cron(0 6 ? * SUN *)',
  launch: { subnetId: subnet },
  kit,
});

for (const [mode, base] of Object.entries(modes)) {
  const input = {
    ...base,
    clusters: base.clusters.map((c) => ({ ...c, drills: drills('subnet-0123456789abcdef0') })),
    dr: { ...base.dr!, drills: drills('subnet-0fedcba9876543210') },
  };

  describe(mode, () => {
    let d: Deployed;
    beforeAll(() => {
      d = deploy(input);
    });

    /** The kit role of `cluster` in `account`, as the templates make it. */
    const kitRole = (account: string, name: string): Principal => {
      const role = d.world.roles.find((r) => r.arn === `arn:aws:iam::${account}:role/${name}`);
      if (!role)
        throw new Error(`no role ${name} in ${account}: ${d.world.roles.map((r) => r.arn).join(', ')}`);
      return role;
    };

    it('a drill instance reads its cluster’s repository and answers its task, at the source and in DR', async () => {
      for (const c of d.clusters) {
        for (const [role, bucket, key, region] of [
          [
            kitRole(source.account, `pgsnap-prod-drill-${c.name}`),
            d.sourceBucketArn,
            d.sourceKeyArn,
            source.region,
          ],
          [kitRole(d.drAccount, `pgsnap-prod-dr-drill-${c.name}`), d.drBucketArn, d.drKeyArn, drRegion],
        ] as const) {
          const reads: IamRequest[] = [
            { action: 'states:SendTaskSuccess', resource: '*' },
            { action: 'states:SendTaskFailure', resource: '*' },
            { action: 'states:SendTaskHeartbeat', resource: '*' },
            { action: 's3:GetObject', resource: `${bucket}/${c.prefix}restores/${restoreId}.json` },
            { action: 's3:GetObject', resource: `${bucket}/${c.prefix}backups/${backupId}/manifest.json` },
            { action: 's3:GetObject', resource: `${bucket}/${c.prefix}wal/000000010000000000000003.zst` },
            { action: 's3:ListBucket', resource: bucket, context: { 's3:prefix': `${c.prefix}wal/` } },
            {
              action: 'kms:Decrypt',
              resource: key,
              context: { 'kms:ViaService': `s3.${region}.amazonaws.com` },
            },
          ];
          for (const request of reads) {
            expect(await d.world.decide(role, request), `${role.name}: ${request.action}`).toBe('Allowed');
          }
        }
      }
    });

    it('a drill instance writes nothing in any repository, reads no other cluster, and starts nothing', async () => {
      const allowed: string[] = [];
      for (const c of d.clusters) {
        const other = d.clusters.find((o) => o.name !== c.name)!;
        for (const [role, bucket, key, region] of [
          [
            kitRole(source.account, `pgsnap-prod-drill-${c.name}`),
            d.sourceBucketArn,
            d.sourceKeyArn,
            source.region,
          ],
          [kitRole(d.drAccount, `pgsnap-prod-dr-drill-${c.name}`), d.drBucketArn, d.drKeyArn, drRegion],
        ] as const) {
          const keys = [
            'cluster.json',
            'wal/000000010000000000000003.zst',
            `backups/${backupId}/manifest.json`,
            `backups/${backupId}/backup_label`,
            `restores/${restoreId}.json`,
          ];
          const requests: IamRequest[] = [
            ...[d.sourceBucketArn, d.drBucketArn].flatMap((b) =>
              keys.flatMap((k) =>
                ['s3:PutObject', 's3:DeleteObject', 's3:DeleteObjectVersion', 's3:PutObjectRetention'].map(
                  (action) => ({ action, resource: `${b}/${c.prefix}${k}` }),
                ),
              ),
            ),
            {
              action: 's3:GetObject',
              resource: `${bucket}/${other.prefix}backups/${backupId}/manifest.json`,
            },
            { action: 's3:PutBucketPolicy', resource: bucket },
            {
              action: 'kms:GenerateDataKey',
              resource: key,
              context: { 'kms:ViaService': `s3.${region}.amazonaws.com` },
            },
            { action: 'states:StartExecution', resource: d.stateMachineArn },
            { action: 'ec2:CreateSnapshots', resource: c.instanceArn },
            { action: 'ec2:DeleteSnapshot', resource: c.drSnapshotArn },
            { action: 'iam:PassRole', resource: role.arn },
          ];
          for (const request of requests) {
            if ((await d.world.decide(role, request)) === 'Allowed')
              allowed.push(`${role.name}: ${request.action} on ${request.resource}`);
          }
        }
      }
      expect(allowed).toEqual([]);
    });
  });
}
