/**
 * The restore state machine's input: which backup, to which point, onto
 * which instance, and what to do with the cluster once it runs. Validated
 * once, at the edge (the first step, and `pgsnap restore start`).
 */
import {
  backupIdFrom,
  backupIdSchema,
  clusterNameSchema,
  restoreIdPattern,
  restoreIdSchema,
} from '../ids.ts';
import { plainAbsolutePath } from '../repository/manifest.ts';
import { recoveryTargetSchema, restoreChecksSchema, restoreModes } from '../repository/restore-record.ts';
import * as z from '../zod.ts';

/**
 * The restoreId of an execution: the request's, else the execution's name
 * when it is one (`pgsnap restore start` and the drill schedule name it so),
 * else derived from its start time and name, the same on every retry.
 */
export function restoreIdOfExecution(execution: { name: string; startTime: Date }, given?: string): string {
  if (given) return given;
  if (restoreIdPattern.test(execution.name)) return execution.name;
  return `r-${backupIdFrom(execution.startTime, execution.name)}`;
}

/**
 * A recovery target time as UTC ISO 8601, its fraction of a second kept as given: PostgreSQL's timestamps
 * count microseconds, and a target cut to the millisecond (Date's resolution) could stop recovery before
 * the very commit asked for. At least three digits of fraction, so a whole second reads as JavaScript
 * writes it (`...:00.000Z`); undefined when `given` is not a time with a zone.
 */
export function recoveryTargetTime(given: string): string | undefined {
  const parts =
    /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:[.,](\d{1,6}))?\s*([zZ]|[+-]\d{2}(?::?\d{2})?)$/.exec(
      given.trim(),
    );
  if (!parts) {
    const time = Date.parse(given);
    return Number.isNaN(time) || !/[zZ]|[+-]\d\d(:?\d\d)?$/.test(given)
      ? undefined
      : new Date(time).toISOString();
  }
  const [, date, clock, fraction = '', zone = 'Z'] = parts;
  const offset = /^[zZ]$/.test(zone)
    ? 'Z'
    : zone.replace(/^([+-]\d{2}):?(\d{2})?$/, (_, h, m) => `${h}:${m ?? '00'}`);
  const whole = Date.parse(`${date}T${clock}${offset}`);
  if (Number.isNaN(whole)) return undefined;
  return new Date(whole).toISOString().replace(/\.000Z$/, `.${fraction.padEnd(3, '0')}Z`);
}

const ec2Id = (prefix: string) =>
  z
    .string()
    .check(z.regex(new RegExp(`^${prefix}-[0-9a-f]{8,17}$`), `an id such as ${prefix}-0123456789abcdef0`));

/**
 * Whether a libpq connection string carries a password: a `password` keyword
 * (`password=…`, any spacing) or, in the URI form, `user:password@` or a
 * `password` query parameter. A primary_conninfo lands in the restore record,
 * in postgresql.auto.conf and in pg_stat_wal_receiver, readable well beyond
 * root: the password belongs in a passfile (`passfile=/…` or the server
 * user's ~/.pgpass) instead.
 */
export function conninfoHasPassword(conninfo: string): boolean {
  const uri = /^\s*postgres(?:ql)?:\/\/([^/?#]*)(?:[/?#]|$)/i.exec(conninfo);
  if (uri) {
    const userinfo = uri[1]!.includes('@') ? uri[1]!.slice(0, uri[1]!.lastIndexOf('@')) : '';
    return userinfo.includes(':') || /[?&]password=/i.test(conninfo);
  }
  return /(?:^|\s)password\s*=/i.test(conninfo);
}

/** What to say when a primary_conninfo carries a password. */
export const conninfoPasswordRefused =
  'primary_conninfo must not carry a password (it is stored in the restore record and postgresql.auto.conf, ' +
  "readable by others): put it in a passfile, e.g. 'host=… user=replicator passfile=/var/lib/postgresql/.pgpass'";

export const instanceRequestSchema = z.union([
  z.strictObject({ instanceId: ec2Id('i') }),
  z.strictObject({
    launch: z.strictObject({
      /** A launch template id (lt-…) or name. */
      launchTemplate: z.string().check(z.regex(/^[A-Za-z0-9()./_-]{3,128}$/)),
      version: z.optional(z.string().check(z.regex(/^(\$Latest|\$Default|[0-9]{1,10})$/))),
      subnetId: ec2Id('subnet'),
    }),
  }),
]);
export type InstanceRequest = z.infer<typeof instanceRequestSchema>;

export const restoreRequestSchema = z.strictObject({
  cluster: clusterNameSchema,
  /** A backupId, or "latest": the newest completed backup. */
  backupId: z._default(z.union([z.literal('latest'), backupIdSchema]), 'latest'),
  target: z.optional(recoveryTargetSchema),
  instance: instanceRequestSchema,
  mode: z._default(z.enum(restoreModes), 'restore'),
  /** EBS provisioned rate for volume initialization, MiB/s (100–300); none: EBS's default. */
  initializationRate: z.optional(z.int().check(z.gte(100), z.lte(300))),
  /** Full speed within this many minutes: the slowest initialization rate that meets it (full-speed.ts); refused when 300 MiB/s cannot. */
  fullSpeedMinutes: z.optional(z.number().check(z.positive(), z.lte(10_080))),
  /** Re-encrypt the new volumes with this KMS key (its ARN or id); none: the snapshots' own key. */
  kmsKeyId: z.optional(z.string().check(z.minLength(1))),
  checks: z._default(restoreChecksSchema, { amcheck: 'all' }),
  /** standby: how the restored server reaches its primary. */
  primaryConninfo: z.optional(
    z.string().check(
      z.maxLength(1000),
      z.refine((conninfo) => !conninfoHasPassword(conninfo), conninfoPasswordRefused),
    ),
  ),
  /** Where the target host places the volumes: their recorded mount points below this directory (default: at them). */
  mountRoot: z.optional(plainAbsolutePath),
  /** The port the restored server listens on (default: the source's). */
  port: z.optional(z.int().check(z.gte(1), z.lte(65535))),
  /** Set by `pgsnap restore start` and the drill schedule; otherwise derived from the execution. */
  restoreId: z.optional(restoreIdSchema),
});
export type RestoreRequest = z.infer<typeof restoreRequestSchema>;
export type RestoreRequestInput = z.input<typeof restoreRequestSchema>;
