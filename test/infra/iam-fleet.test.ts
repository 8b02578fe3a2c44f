/**
 * IAM evaluated past 30 listed clusters, where the Lambdas are granted by repository prefix rather than by
 * cluster (infra/guards/fleet-grants.ts, docs/security.md "Many clusters"): every Lambda of both stacks may
 * still send what its code sends, for a cluster named by instance id, one selected by tags and the last one
 * listed; the hosts stay each to its own cluster; and the Lambdas' reach ends at their repository prefix.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { EnvironmentInput } from '../../infra/config/config.ts';
import { namedGrantsUpTo } from '../../infra/guards/fleet-grants.ts';
import type { IamRequest } from '../support/iam.ts';
import { type Deployed, deploy, drRegion, environment } from '../support/iam-deployment.ts';
import { drRequestsOf, requestsOf } from '../support/iam-requests.ts';
import { backupId } from '../support/iam-s3-requests.ts';
import { sentCommands } from '../support/sent-commands.ts';

/** The IAM tests' environment with listed clusters added past the threshold, each on its own instance. */
function fleet(): EnvironmentInput {
  const base = environment({ region: drRegion });
  const added = Array.from({ length: namedGrantsUpTo }, (_, i) => ({
    name: `fleet-db-${String(i).padStart(2, '0')}`,
    instance: { instanceId: `i-0${(i + 1).toString(16).padStart(16, '0')}` },
    volumeIds: [`vol-0${(i + 1).toString(16).padStart(16, '0')}`],
    repository: { prefix: 'pgsnap/' },
    copyToDr: true,
    retention: { keepLast: 7 },
  }));
  return { ...base, clusters: [...base.clusters!, ...added] };
}

describe(`past ${namedGrantsUpTo} listed clusters (grants by repository prefix)`, () => {
  let d: Deployed;
  beforeAll(() => {
    d = deploy(fleet());
  }, 120_000);

  /** The first (by instance id), the second (by tags) and the last cluster listed. */
  const sampled = () => [d.clusters[0]!, d.clusters[1]!, d.clusters.at(-1)!];

  it('each Lambda of both stacks may still send every command its code sends', async () => {
    expect(d.clusters.length).toBeGreaterThan(namedGrantsUpTo);
    const refused: string[] = [];
    for (const { handler, role } of d.functions) {
      for (const command of await sentCommands(`functions/${handler}.ts`)) {
        for (const cluster of sampled()) {
          for (const { as, request } of requestsOf(command, handler, d, cluster)) {
            const principal = as === 'own' ? role : d.drActor;
            if ((await d.world.decide(principal, request)) !== 'Allowed')
              refused.push(`${handler}: ${request.action} on ${request.resource} (${cluster.name})`);
          }
        }
      }
    }
    for (const { handler, role } of d.drFunctions) {
      for (const command of await sentCommands(`functions/${handler}.ts`)) {
        for (const cluster of sampled()) {
          for (const { request } of drRequestsOf(command, handler, d, cluster)) {
            if ((await d.world.decide(role, request)) !== 'Allowed')
              refused.push(`DR ${handler}: ${request.action} on ${request.resource} (${cluster.name})`);
          }
        }
      }
    }
    expect(refused).toEqual([]);
  }, 120_000);

  it('a database host still reaches only its own cluster’s prefix', async () => {
    const allowed: string[] = [];
    const last = d.clusters.length - 1;
    for (const [host, other] of [
      [d.hosts[0]!, d.clusters[last]!],
      [d.hosts[last]!, d.clusters[0]!],
    ] as const) {
      const wal = `${d.sourceBucketArn}/${other.prefix}wal/000000010000000000000003.zst`;
      for (const request of [
        { action: 's3:GetObject', resource: wal },
        { action: 's3:PutObject', resource: wal, context: { 's3:if-none-match': '*' } },
        {
          action: 's3:ListBucket',
          resource: d.sourceBucketArn,
          context: { 's3:prefix': `${other.prefix}wal/` },
        },
      ] as IamRequest[]) {
        if ((await d.world.decide(host, request)) === 'Allowed')
          allowed.push(`${host.name}: ${request.action} on ${request.resource}`);
      }
    }
    expect(allowed).toEqual([]);
  });

  it('the Lambdas reach every cluster of their repository prefix, and nothing outside it', async () => {
    const recordBackup = d.functions.find((f) => f.handler === 'record-backup')!.role;
    const manifest = (root: string) => ({
      action: 's3:PutObject',
      resource: `${d.sourceBucketArn}/${root}/backups/${backupId}/manifest.json`,
    });
    // Widened on purpose: a cluster of the prefix that is not (yet) listed.
    expect(await d.world.decide(recordBackup, manifest('pgsnap/unlisted-db'))).toBe('Allowed');
    expect(await d.world.decide(recordBackup, manifest('other/unlisted-db'))).not.toBe('Allowed');
    const createSnapshots = d.functions.find((f) => f.handler === 'create-snapshots')!.role;
    // A snapshot without the cluster tag is still refused.
    expect(
      await d.world.decide(createSnapshots, {
        action: 'ec2:CreateSnapshots',
        resource: d.clusters[0]!.sourceSnapshotArn,
      }),
    ).not.toBe('Allowed');
  });
});
