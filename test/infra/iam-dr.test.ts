/**
 * DR owns DR (issue 28), evaluated over both synthesized stacks as AWS would
 * (test/support/iam.ts): no principal of the source account records anything
 * in DR, the DR stack's own recorder writes the DR manifests, and what is
 * written once in DR stays as written, whoever asks.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { proposedManifestName } from '#domain/ebs/dr-copies';
import { environmentSchema } from '../../infra/config/config.ts';
import { drNames } from '../../infra/dr/dr-config.ts';
import type { IamRequest, Principal } from '../support/iam.ts';
import { type Deployed, deploy, modes } from '../support/iam-deployment.ts';
import { restoreId } from '../support/iam-restore-requests.ts';
import { backupId } from '../support/iam-s3-requests.ts';

/** `principal` with every S3 right in its own policies: what the DR bucket's policy alone must refuse. */
function allOfS3(principal: Principal): Principal {
  return {
    ...principal,
    policies: [
      ...principal.policies,
      {
        name: 'all of s3',
        policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }] },
      },
    ],
  };
}

const wal = 'wal/000000010000000000000003.zst';

for (const [mode, input] of Object.entries(modes)) {
  describe(mode, () => {
    let d: Deployed;
    let sourcePrincipals: Principal[];
    beforeAll(() => {
      d = deploy(input);
      const parsed = environmentSchema.parse(input);
      const replication = d.world.roles.find(
        (r) => r.name === drNames(parsed, parsed.dr!).replicationRoleName,
      );
      expect(replication).toBeDefined();
      // The copier, the role it assumes in DR (across accounts), WAL replication.
      sourcePrincipals = [...new Set([d.copier, d.drActor, replication!])];
    });

    it('the source’s principals cannot write a DR manifest or a DR restore record, nor overwrite DR WAL, not even with all of S3', async () => {
      const allowed: string[] = [];
      for (const principal of sourcePrincipals) {
        for (const c of d.clusters) {
          const at = (key: string) => `${d.drBucketArn}/${c.prefix}${key}`;
          const requests: IamRequest[] = [
            { action: 's3:PutObject', resource: at(`backups/${backupId}/manifest.json`) },
            {
              action: 's3:PutObject',
              resource: at(`backups/${backupId}/manifest.json`),
              context: { 's3:if-none-match': '*' },
            },
            { action: 's3:ReplicateObject', resource: at(`backups/${backupId}/manifest.json`) },
            { action: 's3:PutObjectTagging', resource: at(`backups/${backupId}/manifest.json`) },
            { action: 's3:PutObject', resource: at(`restores/${restoreId}.json`) },
            { action: 's3:PutObject', resource: at(wal) },
            { action: 's3:PutObject', resource: at(wal), context: { 's3:if-none-match': '*' } },
          ];
          for (const request of requests) {
            if ((await d.world.decide(allOfS3(principal), request)) === 'Allowed')
              allowed.push(`${principal.name}: ${request.action} on ${request.resource}`);
          }
        }
      }
      expect(allowed).toEqual([]);
    });

    it('the DR stack’s recorder writes the DR manifests, and no other DR object', async () => {
      const recorder = d.drFunctions.find((f) => f.handler === 'record-dr-backup')?.role;
      expect(recorder?.account).toBe(d.drAccount);
      for (const c of d.clusters) {
        const at = (key: string) => `${d.drBucketArn}/${c.prefix}${key}`;
        expect(
          await d.world.decide(recorder!, {
            action: 's3:PutObject',
            resource: at(`backups/${backupId}/manifest.json`),
          }),
        ).toBe('Allowed');
        for (const key of [
          `restores/${restoreId}.json`,
          'cluster.json',
          `backups/${backupId}/backup_label`,
          `backups/${backupId}/${proposedManifestName}`,
        ]) {
          const request = { action: 's3:PutObject', resource: at(key), context: { 's3:if-none-match': '*' } };
          expect(await d.world.decide(recorder!, request), key).not.toBe('Allowed');
        }
        expect(
          await d.world.decide(recorder!, {
            action: 's3:DeleteObject',
            resource: at(`backups/${backupId}/manifest.json`),
          }),
        ).not.toBe('Allowed');
      }
    });

    it('in DR the WAL, the pin, the artifacts and the proposed manifests are write-once, whoever writes them', async () => {
      const administrator: Principal = {
        name: 'an administrator of the DR account',
        arn: `arn:aws:iam::${d.drAccount}:role/admin`,
        account: d.drAccount,
        policies: [
          {
            name: 'admin',
            policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] },
          },
        ],
      };
      for (const c of d.clusters) {
        for (const key of [
          wal,
          'cluster.json',
          `backups/${backupId}/backup_label`,
          `backups/${backupId}/${proposedManifestName}`,
        ]) {
          const resource = `${d.drBucketArn}/${c.prefix}${key}`;
          expect(
            await d.world.decide(administrator, { action: 's3:PutObject', resource }),
            `an overwriting PutObject of ${key}`,
          ).toBe('ExplicitlyDenied');
          expect(
            await d.world.decide(administrator, {
              action: 's3:PutObject',
              resource,
              context: { 's3:if-none-match': '*' },
            }),
            `a first PutObject of ${key}`,
          ).toBe('Allowed');
        }
      }
    });
  });
}
