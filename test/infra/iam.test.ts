/**
 * IAM evaluated, not assumed (issue 18): both stacks of an environment,
 * synthesized and resolved to concrete ARNs, with every request the code
 * sends decided by an IAM policy evaluator (@cloud-copilot/iam-simulate)
 * against the sender's identity policies together with the resource's own
 * policy (KMS key policy, bucket policy, trust policy), as AWS decides it.
 *
 * What each Lambda sends is read from its bundle (test/support/sent-commands.ts);
 * where each command goes (which ARN, which condition keys AWS sets) is the
 * table `requestsOf` (test/support/iam-requests.ts), which throws on a command it does not know, so a
 * new command cannot go unchecked. The state machine's own requests come
 * from its Task states, the schedules' from their targets.
 *
 * Not modelled: KMS grants (cross-account, the DR role uses the source volume
 * key only through the grant copy-snapshots creates; the grant itself is
 * checked as the copier's kms:CreateGrant), SCPs, and S3 replication, which
 * S3 itself performs.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { proposedManifestName } from '#domain/ebs/dr-copies';
import { snapshotTags } from '#domain/ebs/snapshots';
import { restoreTags } from '#domain/restore/volumes';
import { environmentSchema } from '../../infra/config/config.ts';
import { drNames } from '../../infra/dr/dr-config.ts';
import { backupMetrics, hostMetrics } from '../../infra/monitoring/metrics-and-events.ts';
import type { IamRequest, Principal } from '../support/iam.ts';
import { type Deployed, deploy, externalId, modes, source } from '../support/iam-deployment.ts';
import { drRequestsOf, requestsOf } from '../support/iam-requests.ts';
import { cleanupReaders, restoreHandlers, restoreId } from '../support/iam-restore-requests.ts';
import { backupId, s3Requests } from '../support/iam-s3-requests.ts';
import { type SentCommand, sentCommands } from '../support/sent-commands.ts';

/** `principal` with all of S3 in its own policies: what a bucket policy alone must refuse. */
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
      expect(new Set([...d.functions, ...d.drFunctions].map((f) => f.handler))).toEqual(new Set(files));
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
        new Set([
          'apply-retention',
          'start-retention',
          'start-drill',
          'report-backup-age',
          'record-dr-backup',
          'write-catalog',
          ...restoreHandlers,
        ]),
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
          // A backup goes whole, with what lies beside its manifest (in DR, the source's proposal).
          for (const name of ['backup_label', 'manifest.json', proposedManifestName]) {
            const key = `${bucketArn}/${c.prefix}backups/${backupId}/${name}`;
            expect(await d.world.decide(role, { action: 's3:DeleteObject', resource: key }), key).toBe(
              'Allowed',
            );
          }
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

    it('the restore’s cleanup Lambdas read the restore records and can neither write nor delete one, here or in DR', async () => {
      const allowed: string[] = [];
      for (const [functions, bucketArn] of [
        [d.functions, d.sourceBucketArn],
        [d.drFunctions, d.drBucketArn],
      ] as const) {
        for (const { handler, role } of functions.filter((f) => cleanupReaders.has(f.handler))) {
          for (const c of d.clusters) {
            const record = `${bucketArn}/${c.prefix}restores/${restoreId}.json`;
            expect(await d.world.decide(role, { action: 's3:GetObject', resource: record }), handler).toBe(
              'Allowed',
            );
            for (const action of ['s3:PutObject', 's3:DeleteObject', 's3:DeleteObjectVersion']) {
              if ((await d.world.decide(role, { action, resource: record })) === 'Allowed')
                allowed.push(`${handler} (${role.name}): ${action} on ${record}`);
            }
          }
        }
      }
      expect(allowed).toEqual([]);
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
        ...(await sentCommands('agent/host/task-token.ts')),
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
                      // Not the manifest: the orchestrator records it (the next tests).
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

    it('a database host cannot write its own cluster’s manifests or restore records: the orchestrator records them', async () => {
      const allowed: string[] = [];
      for (const [index, host] of d.hosts.entries()) {
        const own = d.clusters[index]!;
        for (const key of [`backups/${backupId}/manifest.json`, 'restores/20261207T080000Z-abc123.json']) {
          const resource = `${d.sourceBucketArn}/${own.prefix}${key}`;
          // With and without If-None-Match: a first write is as much the orchestrator's as a rewrite.
          for (const request of [
            { action: 's3:PutObject', resource },
            { action: 's3:PutObject', resource, context: { 's3:if-none-match': '*' } },
            { action: 's3:DeleteObject', resource },
          ]) {
            if ((await d.world.decide(host, request)) === 'Allowed')
              allowed.push(`${host.name}: ${request.action} on ${request.resource}`);
          }
        }
        // What stays the host's: write-once WAL and artifacts.
        const wal = `${d.sourceBucketArn}/${own.prefix}wal/000000010000000000000003.zst`;
        expect(
          await d.world.decide(host, {
            action: 's3:PutObject',
            resource: wal,
            context: { 's3:if-none-match': '*' },
          }),
        ).toBe('Allowed');
      }
      expect(allowed).toEqual([]);
    });

    it('the bucket lets no host write a manifest or a restore record, even one whose own policies allow all of S3', async () => {
      const allowed: string[] = [];
      const recordKeys = [`backups/${backupId}/manifest.json`, 'restores/r-20260101T040000Z-d0d0d0.json'];
      for (const [index, host] of [...d.hosts, ...d.restoreTargets].entries()) {
        const own = d.clusters[index % d.clusters.length]!;
        const mighty = allOfS3(host);
        for (const key of recordKeys) {
          const resource = `${d.sourceBucketArn}/${own.prefix}${key}`;
          for (const request of [
            { action: 's3:PutObject', resource },
            // A first write is as much the orchestrator's as a rewrite.
            { action: 's3:PutObject', resource, context: { 's3:if-none-match': '*' } },
            { action: 's3:DeleteObject', resource },
            { action: 's3:DeleteObjectVersion', resource },
            { action: 's3:PutObjectRetention', resource },
            { action: 's3:PutObjectLegalHold', resource },
            { action: 's3:PutObjectTagging', resource },
          ]) {
            const decision = await d.world.decide(mighty, request);
            if (decision !== 'ExplicitlyDenied')
              allowed.push(`${host.name}: ${request.action} on ${request.resource} → ${decision}`);
          }
        }
        // What stays a host's to write: the write-once WAL and artifacts.
        if (index < d.hosts.length) {
          expect(
            await d.world.decide(mighty, {
              action: 's3:PutObject',
              resource: `${d.sourceBucketArn}/${own.prefix}wal/000000010000000000000003.zst`,
              context: { 's3:if-none-match': '*' },
            }),
          ).toBe('Allowed');
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
        // The manifests change as a backup goes on: not write-once, and the orchestrator's to write, never a host's.
        expect(
          await d.world.decide(d.hosts[index]!, {
            action: 's3:PutObject',
            resource: `${d.sourceBucketArn}/${own.prefix}backups/${backupId}/manifest.json`,
          }),
        ).toBe('ExplicitlyDenied');
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
