/**
 * Credentials for a host found by tags (the catalog's `discover` block):
 * the credential vendor (functions/vend-credentials.ts) gives a database host
 * the rights of its own cluster, and of no other, from facts the host cannot
 * write.
 *
 * Who is asking: the Lambda function URL uses AWS_IAM auth, so Lambda has
 * checked the caller's SigV4 signature and passes its identity in
 * `requestContext.authorizer.iam.userArn` (Lambda Developer Guide, "Invoking
 * Lambda function URLs", request payload). A host's instance-profile session
 * is `arn:aws:sts::<account>:assumed-role/<role>/<instance-id>`: EC2 names the
 * role session after the instance (IAM User Guide, "IAM policy elements:
 * Variables and tags", request information: for a role assigned to an Amazon
 * EC2 instance `aws:userid` is `role-id:ec2-instance-id`,
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html#policy-vars-infotouse).
 * The discovered-host role trusts only ec2.amazonaws.com, so no one can open
 * a session of it under another name.
 *
 * Which cluster: the instance's tag, read by the vendor from EC2, never from
 * the request. The credentials are the discovered-cluster role's, with the
 * cluster as a session tag, which its policy uses as `${aws:PrincipalTag/…}`.
 */
import { DescribeInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { AssumeRoleCommand, type STSClient } from '@aws-sdk/client-sts';
import type { Catalog } from './catalog.ts';
import { PreconditionError } from './errors.ts';
import { clusterNamePattern } from './ids.ts';

/** The session tag that names the cluster; the discovered-cluster role's policy reads it. */
export const clusterSessionTag = 'pgsnap:cluster';

/**
 * Role chaining (the vendor's own session assuming another role) caps a
 * session at one hour: a DurationSeconds above 3600 fails (STS API Reference,
 * AssumeRole, DurationSeconds: "if you assume a role using role chaining and
 * provide a DurationSeconds parameter value greater than one hour, the
 * operation fails").
 */
export const vendedSessionSeconds = 3600;

const instanceIdPattern = /^i-[0-9a-f]{8}(?:[0-9a-f]{9})?$/;

/**
 * The credential vendor refused a caller: not a session of the discovered-host role, a session not named
 * after an instance, or an instance that is not running, not tagged with a valid cluster name, or tagged
 * with a listed cluster's name. The function URL answers 403 with the message.
 *
 * What to do: Launch the host with the `pgsnap-<environment>-discovered-host` instance profile, tag it
 * `<discover.tag>=<cluster>` with a cluster name that is not listed in `clusters` (a listed cluster's host
 * holds that cluster's managed policy and needs no PGSNAP_CREDENTIALS_URL), and call the vendor from the
 * host itself.
 */
export class CredentialsRefusedError extends PreconditionError {
  override name = 'CredentialsRefusedError';
}

export interface VendRequest {
  /** requestContext.authorizer.iam.userArn, as Lambda verified it. */
  callerArn: string | undefined;
  /** The discovered-host role's name (no path). */
  hostRoleName: string;
  /** The discovered-cluster role to assume. */
  clusterRoleArn: string;
  catalog: Catalog;
}

export interface VendedCredentials {
  cluster: string;
  instanceId: string;
  AccessKeyId: string;
  SecretAccessKey: string;
  Token: string;
  /** ISO 8601. */
  Expiration: string;
}

/** The instance id of an instance-profile session of `hostRoleName`, or a refusal. */
export function instanceOfCaller(callerArn: string | undefined, hostRoleName: string): string {
  const match = /^arn:aws[\w-]*:sts::\d{12}:assumed-role\/([^/]+)\/(.+)$/.exec(callerArn ?? '');
  if (!match || match[1] !== hostRoleName) {
    throw new CredentialsRefusedError(
      `the caller ${callerArn ?? '(none)'} is not a session of the ${hostRoleName} role; ` +
        `only a host launched with the ${hostRoleName} instance profile may ask for credentials`,
    );
  }
  const session = match[2]!;
  if (!instanceIdPattern.test(session)) {
    throw new CredentialsRefusedError(
      `the ${hostRoleName} session ${JSON.stringify(session)} is not named after an instance; ` +
        'only the instance profile EC2 gives a running instance is accepted',
    );
  }
  return session;
}

/** The cluster `instanceId` runs, by its discovery tag, or a refusal. */
export async function clusterOfInstance(
  ec2: EC2Client,
  instanceId: string,
  catalog: Catalog,
): Promise<string> {
  const discover = catalog.discover;
  if (!discover) {
    throw new CredentialsRefusedError('this environment finds no cluster by tags (no discover block)');
  }
  // An id EC2 does not know is an error, not an empty answer (InvalidInstanceID.NotFound, EC2 API
  // Reference, "Error codes"): that is a refusal, not a failure of the vendor.
  const found = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] })).catch((error) => {
    if ((error as Error).name.startsWith('InvalidInstanceID.')) return { Reservations: [] };
    throw error;
  });
  const instance = (found.Reservations ?? []).flatMap((r) => r.Instances ?? [])[0];
  if (!instance || instance.InstanceId !== instanceId) {
    throw new CredentialsRefusedError(`instance ${instanceId} was not found`);
  }
  const state = instance.State?.Name;
  if (state !== 'running') {
    throw new CredentialsRefusedError(`instance ${instanceId} is ${state ?? 'in no state'}, not running`);
  }
  const cluster = instance.Tags?.find((t) => t.Key === discover.tag)?.Value;
  if (cluster === undefined) {
    throw new CredentialsRefusedError(
      `instance ${instanceId} has no ${discover.tag} tag; tag it ${discover.tag}=<cluster> to make it a cluster's host`,
    );
  }
  if (!clusterNamePattern.test(cluster)) {
    throw new CredentialsRefusedError(
      `instance ${instanceId} is tagged ${discover.tag}=${JSON.stringify(cluster)}, not a valid cluster name ` +
        '(lowercase letters, digits, . _ -, at most 63 characters)',
    );
  }
  if (catalog.clusters.some((c) => c.name === cluster)) {
    throw new CredentialsRefusedError(
      `instance ${instanceId} is tagged ${discover.tag}=${cluster}, a listed cluster: its hosts hold the ` +
        `cluster's own managed policy, not credentials from the vendor`,
    );
  }
  return cluster;
}

/** The discovered-cluster role's credentials for the calling host's cluster, tagged with it. */
export async function vendCredentials(
  clients: { ec2: EC2Client; sts: STSClient },
  request: VendRequest,
): Promise<VendedCredentials> {
  const instanceId = instanceOfCaller(request.callerArn, request.hostRoleName);
  const cluster = await clusterOfInstance(clients.ec2, instanceId, request.catalog);
  const assumed = await clients.sts.send(
    new AssumeRoleCommand({
      RoleArn: request.clusterRoleArn,
      // CloudTrail shows which instance each session served.
      RoleSessionName: instanceId,
      DurationSeconds: vendedSessionSeconds,
      Tags: [{ Key: clusterSessionTag, Value: cluster }],
    }),
  );
  const c = assumed.Credentials;
  if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration) {
    throw new PreconditionError(`AssumeRole of ${request.clusterRoleArn} returned no credentials`);
  }
  return {
    cluster,
    instanceId,
    AccessKeyId: c.AccessKeyId,
    SecretAccessKey: c.SecretAccessKey,
    Token: c.SessionToken,
    Expiration: c.Expiration.toISOString(),
  };
}
