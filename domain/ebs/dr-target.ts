/**
 * Where backups are copied for disaster recovery, as the Lambdas receive it
 * (PGSNAP_DR), and the session that acts there: in another region of the same
 * account with the Lambda's own credentials, in another account through the
 * role the DR stack creates there, assumed with its external id, so that the
 * DR account owns what is written (its copies, its objects) and re-encrypts it
 * with its own key.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { AssumeRoleCommand, type STSClient } from '@aws-sdk/client-sts';
import { sdkRetry } from '../aws-retry.ts';
import { PreconditionError } from '../errors.ts';
import { jsonText } from '../parse.ts';
import { parseRepositoryUrl } from '../repository/location.ts';
import { openRepository } from '../repository/open.ts';
import { Repository } from '../repository/repository.ts';
import { S3Store } from '../repository/s3-store.ts';
import * as z from '../zod.ts';

const accountId = z.string().check(z.regex(/^\d{12}$/, 'a 12-digit AWS account id'));

export const drTargetSchema = z
  .object({
    /** The account and region the backups are taken in. */
    sourceAccount: accountId,
    sourceRegion: z.string().check(z.minLength(1)),
    /** The account and region the copies go to. */
    account: accountId,
    region: z.string().check(z.minLength(1)),
    /** The DR key, in the DR account and region (key or alias ARN): the copies are re-encrypted with it. */
    kmsKeyArn: z.string().check(z.startsWith('arn:')),
    /** The role the source assumes in the DR account; required when the DR account is another account. */
    roleArn: z.optional(z.string().check(z.startsWith('arn:'))),
    externalId: z.optional(z.string().check(z.minLength(2))),
    /** EBS snapshot lock put on each DR copy once it is completed. */
    snapshotLock: z.optional(
      z.strictObject({
        mode: z.enum(['governance', 'compliance']),
        days: z.int().check(z.gte(1), z.lte(36_500)),
      }),
    ),
    /**
     * The DR RPO in minutes: copies are time-based, each to complete within what is left of it
     * (completionDurationMinutes in dr-copies.ts); absent, copies are standard (best effort).
     */
    rpoMinutes: z.optional(z.int().check(z.gte(15))),
    /**
     * The DR repository of each cluster that is copied: `s3://<dr bucket>/<prefix>?region=<dr region>`. The
     * stack writes them into the cluster catalog instead (functions/commons/dr-target.ts): none here.
     */
    clusters: z._default(z.record(z.string(), z.strictObject({ repository: z.string() })), {}),
  })
  .check(
    z.superRefine((target, ctx) => {
      const crossAccount = target.account !== target.sourceAccount;
      if (crossAccount && !(target.roleArn && target.externalId)) {
        ctx.addIssue({
          code: 'custom',
          path: ['roleArn'],
          message: `copies to account ${target.account} need the DR role's roleArn and externalId`,
        });
      }
      if (!crossAccount && target.region === target.sourceRegion) {
        ctx.addIssue({
          code: 'custom',
          path: ['region'],
          message: 'a DR copy in the source account must go to another region',
        });
      }
    }),
  );
export type DrTarget = z.infer<typeof drTargetSchema>;
/** A DR target as written: without its clusters when the catalog has them. */
export type DrTargetInput = z.input<typeof drTargetSchema>;

/** The DR target as JSON in an environment variable (PGSNAP_DR). */
export const drTargetVariable = jsonText(drTargetSchema);

export function isCrossAccount(target: DrTarget): boolean {
  return target.account !== target.sourceAccount;
}

/** What acts in the DR account and region. */
export interface DrSession {
  /** EC2 in the DR region, as the DR account when the copy crosses accounts. */
  ec2: EC2Client;
  /** The DR repository of `cluster`, written as the DR account when the copy crosses accounts. */
  openRepository(cluster: string): Promise<Repository>;
  close(): void;
}

export function drRepositoryUrl(target: DrTarget, cluster: string): string {
  const entry = target.clusters[cluster];
  if (!entry) {
    throw new PreconditionError(
      `cluster ${cluster} is not copied to DR (it has no DR repository); add it to the DR configuration`,
    );
  }
  return entry.repository;
}

/**
 * Opens the session in the DR account: the caller's own credentials for the
 * same account, or the DR role assumed with its external id.
 */
export async function openDrSession(
  sts: STSClient,
  target: DrTarget,
  options: { sessionName: string },
): Promise<DrSession> {
  if (!isCrossAccount(target)) {
    const ec2 = new EC2Client({ ...sdkRetry, region: target.region });
    return {
      ec2,
      openRepository: (cluster) => openRepository(drRepositoryUrl(target, cluster), cluster),
      close: () => ec2.destroy(),
    };
  }
  const assumed = await sts.send(
    new AssumeRoleCommand({
      RoleArn: target.roleArn,
      ExternalId: target.externalId,
      // Session names allow [\w+=,.@-] and at most 64 characters.
      RoleSessionName: options.sessionName.replace(/[^\w+=,.@-]/g, '-').slice(0, 64),
      DurationSeconds: 900,
    }),
  );
  const c = assumed.Credentials;
  if (!c?.AccessKeyId || !c.SecretAccessKey) {
    throw new PreconditionError(`AssumeRole of ${target.roleArn} returned no credentials`);
  }
  const credentials = {
    accessKeyId: c.AccessKeyId,
    secretAccessKey: c.SecretAccessKey,
    ...(c.SessionToken ? { sessionToken: c.SessionToken } : {}),
    ...(c.Expiration ? { expiration: c.Expiration } : {}),
  };
  const ec2 = new EC2Client({ ...sdkRetry, region: target.region, credentials });
  const opened: Repository[] = [];
  return {
    ec2,
    openRepository: async (cluster) => {
      const location = parseRepositoryUrl(drRepositoryUrl(target, cluster));
      if (location.kind !== 's3') {
        // A directory has no account: only tests and local runs use one.
        return openRepository(location.url, cluster);
      }
      const client = new S3Client({
        region: location.region ?? target.region,
        credentials,
        ...(location.endpoint ? { endpoint: location.endpoint } : {}),
        forcePathStyle: location.forcePathStyle,
        maxAttempts: 4,
        retryMode: sdkRetry.retryMode,
      });
      const repository = new Repository(new S3Store(location, { client }), cluster);
      opened.push(repository);
      return repository;
    },
    close: () => {
      ec2.destroy();
      for (const repository of opened) repository.close();
    },
  };
}
