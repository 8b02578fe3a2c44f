import { DescribeInstancesCommand, EC2Client, type Instance } from '@aws-sdk/client-ec2';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, test } from 'vitest';
import { vendCredentialsHandler } from '../../functions/vend-credentials.ts';
import { setLocalCatalog } from '../../local/state-machine.ts';

const ec2 = mockClient(EC2Client);
const sts = mockClient(STSClient);
const handle = vendCredentialsHandler({ ec2: new EC2Client({}), sts: new STSClient({}) });

const account = '111122223333';
const hostRole = 'pgsnap-prod-discovered-host';
const clusterRoleArn = `arn:aws:iam::${account}:role/pgsnap-prod-discovered-cluster`;
const instanceId = 'i-0123456789abcdef0';
const expiration = new Date('2026-12-07T15:00:00Z');

/** The function URL's event as Lambda passes it, with the caller it verified (payload format 2.0). */
const eventFrom = (userArn: string) => ({
  version: '2.0',
  rawPath: '/',
  requestContext: {
    accountId: account,
    authorizer: { iam: { accessKey: 'ASIAEXAMPLE', accountId: account, userArn, userId: 'AROAEXAMPLE' } },
    http: { method: 'GET', path: '/' },
  },
  isBase64Encoded: false,
});
const fromInstance = (id = instanceId, role = hostRole) =>
  eventFrom(`arn:aws:sts::${account}:assumed-role/${role}/${id}`);

function instance(state: string, tags: Record<string, string>): Instance {
  return {
    InstanceId: instanceId,
    State: { Name: state as never },
    Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
  };
}

beforeEach(() => {
  ec2.reset();
  sts.reset();
  process.env.PGSNAP_DISCOVERED_HOST_ROLE = hostRole;
  process.env.PGSNAP_DISCOVERED_CLUSTER_ROLE_ARN = clusterRoleArn;
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
  sts.on(AssumeRoleCommand).resolves({
    Credentials: {
      AccessKeyId: 'ASIAVENDED',
      SecretAccessKey: 'secret',
      SessionToken: 'token',
      Expiration: expiration,
    },
  });
});

const describeAnswers = (found: Instance | undefined) =>
  ec2
    .on(DescribeInstancesCommand, { InstanceIds: [instanceId] })
    .resolves({ Reservations: found ? [{ Instances: [found] }] : [] });

async function refusal(event: unknown): Promise<string> {
  const answer = await handle(event);
  expect(answer.statusCode).toBe(403);
  expect(sts.commandCalls(AssumeRoleCommand)).toHaveLength(0);
  return (JSON.parse(answer.body) as { message: string }).message;
}

describe('the credential vendor', () => {
  test("gives a running host tagged with a discovered cluster that cluster's session, tagged with it, for one hour", async () => {
    describeAnswers(instance('running', { 'pgsnap:cluster': 'inventory-db' }));
    const answer = await handle(fromInstance());
    expect(answer.statusCode).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({
      Version: 1,
      AccessKeyId: 'ASIAVENDED',
      SecretAccessKey: 'secret',
      Token: 'token',
      Expiration: expiration.toISOString(),
      cluster: 'inventory-db',
    });
    expect(sts.commandCalls(AssumeRoleCommand)[0]!.args[0].input).toEqual({
      RoleArn: clusterRoleArn,
      RoleSessionName: instanceId,
      // Role chaining: at most an hour.
      DurationSeconds: 3600,
      Tags: [{ Key: 'pgsnap:cluster', Value: 'inventory-db' }],
    });
  });

  test('refuses a session of another role, even one named after the instance', async () => {
    describeAnswers(instance('running', { 'pgsnap:cluster': 'inventory-db' }));
    expect(await refusal(fromInstance(instanceId, 'pgsnap-prod-host-orders'))).toContain(
      'not a session of the pgsnap-prod-discovered-host role',
    );
    expect(await refusal(eventFrom(`arn:aws:iam::${account}:user/admin`))).toContain('not a session');
    expect(await refusal({ requestContext: {} })).toContain('(none)');
    expect(ec2.commandCalls(DescribeInstancesCommand)).toHaveLength(0);
  });

  test('refuses a session of the role that is not named after an instance', async () => {
    expect(await refusal(fromInstance('orders-db'))).toContain('not named after an instance');
    expect(ec2.commandCalls(DescribeInstancesCommand)).toHaveLength(0);
  });

  test('refuses an instance without the tag, one not found, and one that is not running', async () => {
    describeAnswers(instance('running', { Name: 'db1' }));
    expect(await refusal(fromInstance())).toContain('has no pgsnap:cluster tag');
    describeAnswers(undefined);
    expect(await refusal(fromInstance())).toContain('was not found');
    ec2
      .on(DescribeInstancesCommand)
      .rejects(Object.assign(new Error('unknown'), { name: 'InvalidInstanceID.NotFound' }));
    expect(await refusal(fromInstance())).toContain('was not found');
    describeAnswers(instance('stopped', { 'pgsnap:cluster': 'inventory-db' }));
    expect(await refusal(fromInstance())).toContain('is stopped, not running');
  });

  test("refuses a tag naming a listed cluster (its hosts hold that cluster's policy) or an invalid name", async () => {
    describeAnswers(instance('running', { 'pgsnap:cluster': 'orders-db' }));
    expect(await refusal(fromInstance())).toContain('a listed cluster');
    describeAnswers(instance('running', { 'pgsnap:cluster': '../orders-db' }));
    expect(await refusal(fromInstance())).toContain('not a valid cluster name');
    describeAnswers(instance('running', { 'pgsnap:cluster': '*' }));
    expect(await refusal(fromInstance())).toContain('not a valid cluster name');
  });

  test('fails, and does not answer with a refusal, when STS fails', async () => {
    describeAnswers(instance('running', { 'pgsnap:cluster': 'inventory-db' }));
    sts.on(AssumeRoleCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'Throttling' }));
    await expect(handle(fromInstance())).rejects.toThrow('Rate exceeded');
  });
});
