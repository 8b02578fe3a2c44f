/**
 * `<cluster>/restores/<restoreId>.json`: the record of one restore or drill,
 * written by the restore state machine at every phase so that a failure
 * leaves a trace, and read by the target host (which volumes to mount where,
 * what to recover to, what to check). The host never writes it: it answers
 * the state machine, which records the answer.
 *
 * A database host may still be able to write `restores/*` (an old bucket
 * policy, a shared repository), so the target does not take the record on
 * trust: the state machine hands it, through the restore document, the
 * digest of what the host acts on (recordDigest), taken by the Lambda that
 * wrote the record's last layout, and the host refuses a record that does not
 * match it.
 */
import { createHash } from 'node:crypto';
import { backupIdPattern, restoreIdPattern } from '../ids.ts';
import * as z from '../zod.ts';
import { ManifestInvalidError } from './errors.ts';
import { hostReportSchema } from './host-report.ts';
import { plainAbsolutePath, volumeRecordSchema } from './manifest.ts';

export const restoreRecordSchemaVersion = 1;

export const restoreModes = ['restore', 'drill', 'standby'] as const;
export type RestoreMode = (typeof restoreModes)[number];

/** Where recovery stops; none: at the end of the archived WAL. */
export const recoveryTargetSchema = z.union([
  z.strictObject({ time: z.iso.datetime({ offset: true }) }),
  z.strictObject({
    lsn: z.string().check(z.regex(/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i, 'an LSN such as 16/B374D848')),
  }),
  z.strictObject({ name: z.string().check(z.regex(/^[A-Za-z0-9 ._:-]{1,63}$/, 'a restore point name')) }),
  z.strictObject({ immediate: z.literal(true) }),
]);
export type RecoveryTargetRequest = z.infer<typeof recoveryTargetSchema>;

/** What the restored cluster is checked for before it counts as restored. */
export const restoreChecksSchema = z.strictObject({
  /** pg_amcheck's scope: none, the heap and btree indexes of every database (`all`), or one database. */
  amcheck: z._default(z.union([z.enum(['none', 'all']), z.strictObject({ database: z.string() })]), 'all'),
  /** An operator's query whose first column of the first row must read `expect` (as text). */
  sql: z.optional(
    z.strictObject({
      database: z._default(z.string(), 'postgres'),
      query: z.string().check(z.minLength(1), z.maxLength(4000)),
      expect: z._default(z.string(), 't'),
    }),
  ),
});
export type RestoreChecks = z.infer<typeof restoreChecksSchema>;

/**
 * requested → volumes (created) → attached → restoring (on the host) → running
 * (checked; restore and standby modes end here) → completed (a drill, torn
 * down); or failed from any of them, with the reason, after the cleanup.
 */
export const restoreStates = [
  'requested',
  'volumes',
  'attached',
  'restoring',
  'running',
  'completed',
  'failed',
] as const;
export type RestoreState = (typeof restoreStates)[number];

const timestamp = z.iso.datetime();

/** One volume the restore makes from one snapshot of the backup, and where it goes on the target host. */
export const restoreVolumeSchema = z.strictObject({
  snapshotId: z.string(),
  /** The new volume, once CreateVolume returned. */
  volumeId: z.optional(z.string()),
  /** The device name it is attached as (/dev/sdf…); the host finds the volume by its id, never by this. */
  device: z.optional(z.string().check(z.regex(/^\/dev\/[a-z0-9]+$/))),
  source: volumeRecordSchema,
});
export type RestoreVolume = z.infer<typeof restoreVolumeSchema>;

export const restoreRecordSchema = z.strictObject({
  schemaVersion: z.literal(restoreRecordSchemaVersion),
  restoreId: z.string().check(z.regex(restoreIdPattern)),
  cluster: z.string(),
  /** Absent only in the record of a request refused before its backup was found. */
  backupId: z.optional(z.string().check(z.regex(backupIdPattern))),
  mode: z.enum(restoreModes),
  state: z.enum(restoreStates),
  target: z.optional(recoveryTargetSchema),
  checks: restoreChecksSchema,
  primaryConninfo: z.optional(z.string()),
  /** Where the target places the volumes; the target checks again that every mount stays below it. */
  mountRoot: z.optional(plainAbsolutePath),
  port: z.optional(z.int()),
  /** The repository the backup and its WAL are in, as the target host reaches it. */
  repository: z.string(),
  instance: z.optional(
    z.strictObject({
      instanceId: z.string(),
      availabilityZone: z.string(),
      /** The restore launched it (and a drill terminates it). */
      launched: z.boolean(),
    }),
  ),
  volumes: z.array(restoreVolumeSchema),
  /** The backup's consistency point and the WAL the restore needs, as checked before anything was made. */
  wal: z.optional(
    z.strictObject({
      first: z.string(),
      last: z.optional(z.string()),
      stopLsn: z.string(),
      /** Set when the check stopped at its time budget: segments after this one were not listed. */
      checkedTo: z.optional(z.string()),
    }),
  ),
  /** What the host reported: mounts, timings on the host, checks, the last replayed commit. */
  host: z.optional(hostReportSchema),
  timings: z.strictObject({
    requestedAt: timestamp,
    instanceReadyAt: z.optional(timestamp),
    volumesCreatedAt: z.optional(timestamp),
    volumesAvailableAt: z.optional(timestamp),
    attachedAt: z.optional(timestamp),
    /** The restored server accepted connections: the end of the RTO. */
    acceptingAt: z.optional(timestamp),
    finishedAt: z.optional(timestamp),
  }),
  /** Time to open: from the request until the restored server accepted connections. */
  rtoSeconds: z.optional(z.number().check(z.nonnegative())),
  /**
   * How the volumes initialize (domain/restore/full-speed.ts): at a provisioned rate (chosen for a
   * full-speed objective, or asked for) or at EBS's default, and the model's seconds from their
   * creation until every block is on them (an estimate at the default rate).
   */
  initialization: z.optional(
    z.strictObject({
      rateMiBps: z.number().check(z.positive()),
      basis: z.enum(['provisioned', 'estimate']),
      fullSpeedSeconds: z.number().check(z.nonnegative()),
      /** The objective the rate was chosen for, in minutes. */
      objectiveMinutes: z.optional(z.number().check(z.positive())),
      /** GiB initialized at a provisioned rate: what AWS bills for it. */
      billedGiB: z.optional(z.number().check(z.nonnegative())),
      /**
       * What EBS reported once the server was open (DescribeVolumeStatus, domain/restore/initialization.ts):
       * the least progress of the volumes and, at a provisioned rate, EBS's estimate of the longest time left.
       */
      measured: z.optional(
        z.strictObject({
          at: timestamp,
          /** The restore's volumes, and how many of them EBS gave initialization details for. */
          volumes: z.number().check(z.int(), z.nonnegative()),
          reported: z.number().check(z.int(), z.nonnegative()),
          progress: z.optional(z.number().check(z.gte(0), z.lte(100))),
          remainingSeconds: z.optional(z.number().check(z.nonnegative())),
        }),
      ),
    }),
  ),
  /**
   * Time to full speed: from the request until every restored volume is initialized (never before
   * time to open): EBS's own figure when `initialization.measured.remainingSeconds` is there, otherwise
   * the model's (an estimate when `initialization.basis` is `estimate`).
   */
  timeToFullSpeedSeconds: z.optional(z.number().check(z.nonnegative())),
  /** The data the restore kept: the last commit replayed, against the target asked for. */
  dataKept: z.optional(
    z.strictObject({
      lastReplayedCommit: z.optional(timestamp),
      replayLsn: z.optional(z.string()),
      target: z.optional(z.string()),
    }),
  ),
  /** What the cleanup found and removed. */
  cleanup: z.optional(
    z.strictObject({
      volumesDeleted: z.array(z.string()),
      instanceTerminated: z.optional(z.string()),
      unmounted: z.optional(z.boolean()),
    }),
  ),
  failure: z.optional(z.strictObject({ error: z.string(), reason: z.string(), at: timestamp })),
  updatedAt: timestamp,
});
export type RestoreRecord = z.infer<typeof restoreRecordSchema>;

export function parseRestoreRecord(bytes: Buffer, where: string): RestoreRecord {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ManifestInvalidError(`${where} is not JSON; it was truncated or edited`);
  }
  return validateRestoreRecord(value, where);
}

export function validateRestoreRecord(value: unknown, where: string): RestoreRecord {
  const parsed = restoreRecordSchema.safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`);
    throw new ManifestInvalidError(`${where} is not a valid restore record: ${problems.join('; ')}`);
  }
  return parsed.data;
}

/** Every field of the record that the target host acts on: what it mounts where, recovers to, checks and starts. */
function actedOn(record: RestoreRecord): Record<string, unknown> {
  return {
    restoreId: record.restoreId,
    cluster: record.cluster,
    backupId: record.backupId,
    mode: record.mode,
    target: record.target,
    checks: record.checks,
    primaryConninfo: record.primaryConninfo,
    mountRoot: record.mountRoot,
    port: record.port,
    volumes: record.volumes,
  };
}

/** JSON with every object's keys sorted and undefined left out: the same text for the same values. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * The sha256 (hex) of what the target host acts on in `record`: the layout
 * (volumes, mount points, mountRoot), the backup, the target, the checks and
 * the port. It does not change when the state machine records the host's
 * answer or the restore's end, so the restore and its teardown carry the same
 * digest; any rewrite of what the host would act on changes it.
 */
export function recordDigest(record: RestoreRecord): string {
  return createHash('sha256')
    .update(canonicalJson(actedOn(record)))
    .digest('hex');
}

export const recordDigestPattern = /^[0-9a-f]{64}$/;
