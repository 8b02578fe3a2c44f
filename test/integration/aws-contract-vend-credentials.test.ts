/**
 * The credential vendor (functions/vend-credentials.ts) against moto's EC2 and
 * STS: real instances with real tags and states, as DescribeInstances answers
 * them. (moto keeps no session tags on what AssumeRole returns, so that the
 * tag is passed is the unit test's, test/unit/vend-credentials.test.ts, and
 * what it allows is the IAM evaluation's, test/infra/iam-discovered-hosts.test.ts.)
 */
import { CreateTagsCommand, EC2Client, RunInstancesCommand, StopInstancesCommand } from '@aws-sdk/client-ec2';
import { STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { vendCredentialsHandler } from '../../functions/vend-credentials.ts';
import { setLocalCatalog } from '../../local/state-machine.ts';
import { Moto, motoAccount, skipWithoutMoto } from '../support/moto.ts';

const region = 'us-east-1';
const hostRole = 'pgsnap-test-discovered-host';

describe.skipIf(skipWithoutMoto)('the credential vendor against moto EC2 and STS', () => {
  let moto: Moto;
  let ec2: EC2Client;
  let handle: ReturnType<typeof vendCredentialsHandler>;

  const caller = (instanceId: string) => ({
    requestContext: {
      authorizer: { iam: { userArn: `arn:aws:sts::${motoAccount}:assumed-role/${hostRole}/${instanceId}` } },
    },
  });

  async function launch(tags: Record<string, string>): Promise<string> {
    const run = await ec2.send(
      new RunInstancesCommand({
        ImageId: 'ami-12c6146b',
        MinCount: 1,
        MaxCount: 1,
        InstanceType: 't3.micro',
      }),
    );
    const id = run.Instances![0]!.InstanceId!;
    if (Object.keys(tags).length > 0) {
      await ec2.send(
        new CreateTagsCommand({
          Resources: [id],
          Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
        }),
      );
    }
    return id;
  }

  beforeAll(async () => {
    moto = await Moto.start();
    ec2 = new EC2Client(moto.client(region));
    handle = vendCredentialsHandler({ ec2, sts: new STSClient(moto.client(region)) });
    process.env.PGSNAP_DISCOVERED_HOST_ROLE = hostRole;
    process.env.PGSNAP_DISCOVERED_CLUSTER_ROLE_ARN = `arn:aws:iam::${motoAccount}:role/pgsnap-test-discovered-cluster`;
    setLocalCatalog({
      clusters: [
        {
          name: 'orders-db',
          instanceId: 'i-0aaaaaaaaaaaaaaa0',
          fastCheckpoint: false,
          maxBackupMinutes: 60,
          repository: 's3://backups/pgsnap/',
        },
      ],
      discover: {
        tag: 'pgsnap:cluster',
        repository: 's3://backups/fleet/',
        defaults: { fastCheckpoint: false, maxBackupMinutes: 60 },
      },
    });
  }, 120_000);

  afterAll(async () => {
    ec2?.destroy();
    await moto?.stop();
  });

  test('a running instance tagged with a discovered cluster gets credentials for that cluster', async () => {
    const id = await launch({ 'pgsnap:cluster': 'inventory-db' });
    const answer = await handle(caller(id));
    expect(answer.statusCode).toBe(200);
    const body = JSON.parse(answer.body) as Record<string, string>;
    expect(body.cluster).toBe('inventory-db');
    expect(body.AccessKeyId).toMatch(/^ASIA/);
    expect(new Date(body.Expiration!).getTime()).toBeGreaterThan(Date.now());
  });

  test('an untagged instance, a stopped one, one tagged with a listed cluster, and an unknown one are refused', async () => {
    const untagged = await launch({ Name: 'web-1' });
    const stopped = await launch({ 'pgsnap:cluster': 'inventory-db' });
    await ec2.send(new StopInstancesCommand({ InstanceIds: [stopped] }));
    const listed = await launch({ 'pgsnap:cluster': 'orders-db' });
    const refusals: Record<string, string> = {};
    for (const id of [untagged, stopped, listed, 'i-0123456789abcdef0']) {
      const answer = await handle(caller(id));
      refusals[id] = `${answer.statusCode} ${(JSON.parse(answer.body) as { message: string }).message}`;
    }
    expect(refusals[untagged]).toMatch(/^403 .*has no pgsnap:cluster tag/);
    expect(refusals[stopped]).toMatch(/^403 .*is (stopping|stopped), not running/);
    expect(refusals[listed]).toMatch(/^403 .*a listed cluster/);
    // EC2 answers an unknown id with InvalidInstanceID.NotFound, not an empty list.
    expect(refusals['i-0123456789abcdef0']).toMatch(/^403 .*was not found/);
  });
});
