/**
 * The disaster-recovery part of an environment's configuration, and the
 * names both stacks derive from it. The source stack and the DR stack live in
 * different accounts and cannot reference each other's resources, so each
 * DR resource has a name fixed by the environment, known to both sides.
 */
import { z } from 'zod';
import { policyKeepsSomething, retentionPolicySchema } from '#domain/backup/retention';

const accountId = z.string().regex(/^\d{12}$/, 'a 12-digit AWS account id');

export const drSchema = z.strictObject({
  account: accountId
    .optional()
    .describe("The DR account; absent: the environment's own account (a copy to another region only)."),
  region: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-\d$/)
    .describe('The DR region: the copies and the DR bucket live there.'),
  externalId: z
    .string()
    .regex(/^[\w+=,.@:/-]{8,1224}$/, '8 or more of letters, digits and + = , . @ : / -')
    .optional()
    .describe(
      'Proves that the source is the party the DR role trusts (the confused-deputy guard); required for another account. Not a secret, but not guessable either: e.g. `pgsnap-prod-` and random hex.',
    ),
  objectLock: z
    .strictObject({ mode: z.enum(['GOVERNANCE', 'COMPLIANCE']), days: z.int().min(1).max(36_500) })
    .optional()
    .describe('S3 Object Lock on the DR bucket: objects cannot be deleted or overwritten for this long.'),
  snapshotLock: z
    .strictObject({ mode: z.enum(['governance', 'compliance']), days: z.int().min(1).max(36_500) })
    .optional()
    .describe('EBS snapshot lock on the DR copies, once completed.'),
  copyHours: z
    .int()
    .min(1)
    .max(72)
    .default(24)
    .describe(
      'Copies not completed this many hours after they were started are given up (the backup stays).',
    ),
  rpoMinutes: z
    .int()
    .min(15)
    .max(10_080)
    .optional()
    .describe(
      "The DR RPO: how old the newest backup copied to DR may be, from its snapshots' time. With it, copies are time-based (CopySnapshot's CompletionDurationMinutes is what is left of it, 15–2880 in 15-minute steps; charged per GiB, see EBS pricing) and the copy-lag alarm fires past it; without it, copies are best effort and the alarm fires past the cluster's `rpoHours` plus `copyHours`.",
    ),
  replicateWal: z
    .boolean()
    .default(true)
    .describe(
      "Replicate each copied cluster's WAL into the DR bucket (S3 replication on a bucket the stack creates).",
    ),
});
export type DrConfig = z.infer<typeof drSchema>;

/** Retention of one cluster's backups, at the source and, separately, in the DR repository. */
export const retentionSchema = z
  .strictObject({
    ...retentionPolicySchema.shape,
    dr: z
      .optional(retentionPolicySchema)
      .describe("The DR repository's own policy; the source policy when absent."),
    schedule: z
      .string()
      .regex(/^(cron|rate)\(.+\)$/, 'cron(...) or rate(...)')
      .default('rate(1 day)')
      .describe('Retention also runs on this schedule (besides at the end of every backup).'),
    flexibleWindowMinutes: z
      .number()
      .int()
      .min(1)
      .max(1440)
      .default(60)
      .describe("Scheduler's flexible time window of the retention schedule, in minutes (1–1440)."),
  })
  .refine(policyKeepsSomething, 'give keepLast, keepDays and/or thin (hours, days, weeks, months)');
export type RetentionConfig = z.infer<typeof retentionSchema>;

/**
 * A copied cluster's DR RPO in minutes: `dr.rpoMinutes`, or else its own RPO
 * plus the time a copy is given (`rpoHours` + `copyHours`).
 */
export function drRpoMinutes(dr: DrConfig, cluster: { rpoHours: number }): number {
  return dr.rpoMinutes ?? (cluster.rpoHours + dr.copyHours) * 60;
}

export interface DrNames {
  account: string;
  region: string;
  bucketName: string;
  keyAlias: string;
  /** The role the source assumes in the DR account (cross-account only). */
  roleName: string;
  /** The source's role for the DR copy Lambdas, and for WAL replication. */
  copierRoleName: string;
  replicationRoleName: string;
}

/** The fixed names of an environment's DR resources. */
export function drNames(environment: { name: string; account?: string | undefined }, dr: DrConfig): DrNames {
  const account = dr.account ?? environment.account;
  if (dr.account && dr.account !== environment.account && !(environment.account && dr.externalId)) {
    throw new Error(
      `environment ${environment.name}: copies to account ${dr.account} need the environment's own account ` +
        'and dr.externalId (the DR role trusts only that account, with that external id)',
    );
  }
  if (!account) {
    throw new Error(
      `environment ${environment.name}: a DR copy needs the environment's account (or dr.account) to name the DR bucket`,
    );
  }
  const bucketName = `pgsnap-dr-${environment.name}-${account}-${dr.region}`;
  if (bucketName.length > 63) {
    throw new Error(
      `environment ${environment.name}: the DR bucket name ${bucketName} is longer than 63 characters; shorten the environment name`,
    );
  }
  return {
    account,
    region: dr.region,
    bucketName,
    keyAlias: `alias/pgsnap-${environment.name}-dr`,
    roleName: `pgsnap-${environment.name}-dr-copy`,
    copierRoleName: `pgsnap-${environment.name}-dr-copier`,
    replicationRoleName: `pgsnap-${environment.name}-wal-replication`,
  };
}

/** Whether the DR account is another account than the source's. */
export function isCrossAccountDr(environment: { account?: string | undefined }, dr: DrConfig): boolean {
  return dr.account !== undefined && dr.account !== environment.account;
}

/** The DR repository of a copied cluster, as the Lambdas open it: `s3://<dr bucket>/<prefix>?region=<dr region>`. */
export function drRepositoryUrl(names: DrNames, cluster: { repository: { prefix: string } }): string {
  const prefix = cluster.repository.prefix.replace(/\/+$/, '');
  return `s3://${names.bucketName}${prefix ? `/${prefix}` : ''}?region=${names.region}`;
}
