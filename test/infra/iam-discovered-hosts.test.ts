/**
 * Hosts found by tags, evaluated over the synthesized stacks as AWS would
 * decide (test/support/iam.ts): a session the vendor tagged with a cluster
 * writes that cluster's WAL and artifacts and nothing of another's, never a
 * manifest or a restore record; the role tagged hosts run with writes nothing
 * in S3 and tags nothing; only the vendor's role assumes the cluster role and
 * tags its session; only the discovered-host role invokes the vendor's URL;
 * Run Command reaches only instances that carry the discovery tag.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { IamRequest, Principal } from '../support/iam.ts';
import { type Deployed, deploy, modes, source } from '../support/iam-deployment.ts';
import { backupId } from '../support/iam-s3-requests.ts';

const clusterRoleName = 'pgsnap-prod-discovered-cluster';
const hostRoleName = 'pgsnap-prod-discovered-host';
const tagKey = 'pgsnap:cluster';

describe('hosts found by tags', () => {
  let d: Deployed;
  let clusterRole: Principal;
  let hostRole: Principal;
  let vendorRole: Principal;
  let vendorArn: string;
  /** The cluster role's session as the vendor hands it out, tagged with `cluster`. */
  const decideAs = (cluster: string | undefined, request: IamRequest) =>
    d.world.decide(clusterRole, {
      ...request,
      context: { ...request.context, ...(cluster ? { [`aws:PrincipalTag/${tagKey}`]: cluster } : {}) },
    });
  const object = (key: string) => `${d.sourceBucketArn}/fleet/${key}`;
  const put = (key: string): IamRequest => ({
    action: 's3:PutObject',
    resource: object(key),
    // Write-once objects go with If-None-Match (Repository.putIfAbsent).
    context: key.endsWith('/manifest.json') ? {} : { 's3:if-none-match': '*' },
  });
  const list = (prefix: string): IamRequest => ({
    action: 's3:ListBucket',
    resource: d.sourceBucketArn,
    context: { 's3:prefix': `fleet/${prefix}` },
  });

  beforeAll(() => {
    d = deploy(modes['same-account DR (another region)']);
    const named = (name: string) => {
      const role = d.world.roles.find((r) => r.name === name);
      if (!role) throw new Error(`no role ${name} in ${d.world.roles.map((r) => r.name).join(', ')}`);
      return role;
    };
    clusterRole = named(clusterRoleName);
    hostRole = named(hostRoleName);
    vendorRole = d.functions.find((f) => f.handler === 'vend-credentials')!.role;
    const [vendorId] = d.sourceTemplate
      .ofType('AWS::Lambda::Function')
      .find(([, r]) =>
        JSON.stringify(r.Properties?.Environment ?? {}).includes('PGSNAP_DISCOVERED_HOST_ROLE'),
      )!;
    vendorArn = d.sourceTemplate.getAtt(vendorId, 'Arn');
  });

  it("a session tagged with a cluster reads and writes that cluster's WAL and artifacts", async () => {
    const own = [
      put('inventory-db/wal/000000010000000000000003.zst'),
      put('inventory-db/cluster.json'),
      put(`inventory-db/backups/${backupId}/backup_label`),
      { action: 's3:GetObject', resource: object('inventory-db/wal/000000010000000000000003.zst') },
      list('inventory-db/wal/'),
      {
        action: 'kms:GenerateDataKey',
        resource: d.sourceKeyArn,
        context: {
          'kms:ViaService': `s3.${source.region}.amazonaws.com`,
          'kms:EncryptionContext:aws:s3:arn': d.sourceBucketArn,
        },
      },
    ];
    for (const request of own) {
      expect(`${request.action} ${request.resource} ${await decideAs('inventory-db', request)}`).toBe(
        `${request.action} ${request.resource} Allowed`,
      );
    }
  });

  it("it cannot write or list another cluster's, nor any manifest or restore record, nor anything untagged", async () => {
    const refused: Array<[string | undefined, IamRequest]> = [
      ['inventory-db', put('billing-db/wal/000000010000000000000003.zst')],
      ['inventory-db', { action: 's3:GetObject', resource: object('billing-db/cluster.json') }],
      ['inventory-db', list('billing-db/')],
      ['inventory-db', list('')],
      ['inventory-db', put(`inventory-db/backups/${backupId}/manifest.json`)],
      ['inventory-db', put(`billing-db/backups/${backupId}/manifest.json`)],
      ['inventory-db', put('inventory-db/restores/r-20260101T030000Z-a1b2c3.json')],
      ['inventory-db', { action: 's3:DeleteObject', resource: object('inventory-db/cluster.json') }],
      // A listed cluster's repository, outside the discovered prefix.
      [
        'inventory-db',
        { action: 's3:PutObject', resource: `${d.sourceBucketArn}/pgsnap/orders-db/cluster.json` },
      ],
      // A session without the tag resolves no prefix.
      [undefined, put('inventory-db/wal/000000010000000000000003.zst')],
    ];
    const allowed: string[] = [];
    for (const [cluster, request] of refused) {
      const decision = await decideAs(cluster, request);
      if (decision === 'Allowed') allowed.push(`${cluster}: ${request.action} on ${request.resource}`);
    }
    expect(allowed).toEqual([]);
    expect(await decideAs('inventory-db', put(`inventory-db/backups/${backupId}/manifest.json`))).toBe(
      'ExplicitlyDenied',
    );
    expect(await decideAs('inventory-db', put('inventory-db/restores/r.json'))).toBe('ExplicitlyDenied');
  });

  it("the bucket keeps a discovered cluster's WAL and artifacts write-once and its records the Lambdas' alone, whatever the session's policies say", async () => {
    const mighty: Principal = {
      ...clusterRole,
      policies: [
        ...clusterRole.policies,
        {
          name: 'all of s3',
          policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }] },
        },
      ],
    };
    const as = (request: IamRequest) =>
      d.world.decide(mighty, {
        ...request,
        context: { ...request.context, [`aws:PrincipalTag/${tagKey}`]: 'inventory-db' },
      });
    const overwrite = {
      action: 's3:PutObject',
      resource: object('inventory-db/wal/000000010000000000000003.zst'),
    };
    expect(await as(overwrite)).toBe('ExplicitlyDenied');
    expect(await as(put('inventory-db/wal/000000010000000000000003.zst'))).toBe('Allowed');
    expect(
      await as({
        action: 's3:PutObject',
        resource: object(`inventory-db/backups/${backupId}/manifest.json`),
      }),
    ).toBe('ExplicitlyDenied');
    expect(await as({ action: 's3:DeleteObject', resource: object('other-db/restores/r.json') })).toBe(
      'ExplicitlyDenied',
    );
  });

  it('the role tagged hosts run with writes nothing in S3 and tags nothing; it answers tasks and invokes the vendor', async () => {
    const nothing: IamRequest[] = [
      put('inventory-db/wal/000000010000000000000003.zst'),
      { action: 's3:GetObject', resource: object('inventory-db/cluster.json') },
      list('inventory-db/'),
      {
        action: 'ec2:CreateTags',
        resource: `arn:aws:ec2:${source.region}:${source.account}:instance/i-0123456789abcdef0`,
      },
      { action: 'ec2:DeleteTags', resource: `arn:aws:ec2:${source.region}:${source.account}:instance/*` },
      { action: 'sts:AssumeRole', resource: clusterRole.arn },
      { action: 'sts:TagSession', resource: clusterRole.arn },
      // A plain Invoke could carry a forged caller in its event: only the URL's is Lambda's own.
      { action: 'lambda:InvokeFunction', resource: vendorArn },
    ];
    const allowed: string[] = [];
    for (const request of nothing) {
      if ((await d.world.decide(hostRole, request)) === 'Allowed')
        allowed.push(`${request.action} on ${request.resource}`);
    }
    expect(allowed).toEqual([]);
    expect(
      await d.world.decide(hostRole, {
        action: 'lambda:InvokeFunctionUrl',
        resource: vendorArn,
        context: { 'lambda:FunctionUrlAuthType': 'AWS_IAM' },
      }),
    ).toBe('Allowed');
    expect(await d.world.decide(hostRole, { action: 'states:SendTaskSuccess', resource: '*' })).toBe(
      'Allowed',
    );
  });

  it('only the trusted service launches the host role, only the vendor assumes the cluster role and tags its session', async () => {
    const trust = (id: string) =>
      JSON.stringify(
        d.sourceTemplate.resolve(d.sourceTemplate.resource(id).Properties?.AssumeRolePolicyDocument),
      );
    const roleId = (name: string) =>
      d.sourceTemplate.ofType('AWS::IAM::Role').find(([, r]) => r.Properties?.RoleName === name)![0];
    expect(JSON.parse(trust(roleId(hostRoleName)))).toEqual({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
    });
    const tagged = { [`aws:RequestTag/${tagKey}`]: 'inventory-db', 'aws:TagKeys': [tagKey] };
    const assume = { action: 'sts:AssumeRole', resource: clusterRole.arn };
    const tag = { action: 'sts:TagSession', resource: clusterRole.arn, context: tagged };
    expect(await d.world.decide(vendorRole, assume)).toBe('Allowed');
    expect(await d.world.decide(vendorRole, tag)).toBe('Allowed');
    const others = d.world.roles.filter((r) => r.arn !== vendorRole.arn);
    expect(others.length).toBeGreaterThan(10);
    const allowed: string[] = [];
    for (const other of [...others, ...d.hosts]) {
      for (const request of [assume, tag]) {
        if ((await d.world.decide(other, request)) === 'Allowed')
          allowed.push(`${other.name}: ${request.action}`);
      }
    }
    expect(allowed).toEqual([]);
  });

  it("only the discovered-host role is in the vendor's resource policy, and only through the URL with IAM auth", () => {
    const permissions = d.sourceTemplate
      .ofType('AWS::Lambda::Permission')
      .map(([, p]) => d.sourceTemplate.resolve(p.Properties) as Record<string, unknown>)
      .filter((p) => p.FunctionName === vendorArn || String(p.FunctionName).endsWith(':vend-credentials'));
    expect(permissions).toEqual([
      {
        Action: 'lambda:InvokeFunctionUrl',
        FunctionName: vendorArn,
        Principal: hostRole.arn,
        FunctionUrlAuthType: 'AWS_IAM',
      },
      {
        Action: 'lambda:InvokeFunction',
        FunctionName: vendorArn,
        Principal: hostRole.arn,
        InvokedViaFunctionUrl: true,
      },
    ]);
    const [, url] = d.sourceTemplate.ofType('AWS::Lambda::Url')[0]!;
    expect(url.Properties?.AuthType).toBe('AWS_IAM');
  });

  it('Run Command reaches an instance only when it carries the discovery tag', async () => {
    const instance = `arn:aws:ec2:${source.region}:${source.account}:instance/i-0fedcba9876543210`;
    const sendCommand = (tags: Record<string, string>): IamRequest => ({
      action: 'ssm:SendCommand',
      resource: instance,
      context: Object.fromEntries(Object.entries(tags).map(([k, v]) => [`ssm:resourceTag/${k}`, v])),
    });
    expect(await d.world.decide(d.stateMachineRole, sendCommand({ [tagKey]: 'inventory-db' }))).toBe(
      'Allowed',
    );
    expect(await d.world.decide(d.stateMachineRole, sendCommand({ Name: 'web-1' }))).not.toBe('Allowed');
    expect(await d.world.decide(d.stateMachineRole, sendCommand({}))).not.toBe('Allowed');
    // No host may send a command to any instance, its own or another's.
    for (const principal of [hostRole, clusterRole]) {
      expect(await d.world.decide(principal, sendCommand({ [tagKey]: 'inventory-db' }))).not.toBe('Allowed');
    }
  });

  it("report-backup-age finds the tagged hosts and reads a discovered cluster's manifests, and nothing else of it", async () => {
    const reporter = d.functions.find((f) => f.handler === 'report-backup-age')!.role;
    const may = [
      { action: 'ec2:DescribeInstances', resource: '*' },
      { action: 's3:GetObject', resource: object(`inventory-db/backups/${backupId}/manifest.json`) },
      list('inventory-db/backups/'),
    ];
    for (const request of may) {
      expect(`${request.action} ${request.resource} ${await d.world.decide(reporter, request)}`).toBe(
        `${request.action} ${request.resource} Allowed`,
      );
    }
    const mayNot = [
      { action: 's3:GetObject', resource: object('inventory-db/wal/000000010000000000000003.zst') },
      { action: 's3:PutObject', resource: object(`inventory-db/backups/${backupId}/manifest.json`) },
    ];
    for (const request of mayNot) {
      expect(`${request.action} ${request.resource} ${await d.world.decide(reporter, request)}`).not.toBe(
        `${request.action} ${request.resource} Allowed`,
      );
    }
  });
});
