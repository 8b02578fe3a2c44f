/**
 * `backups/<backupId>/manifest.json`: the catalog entry of one backup. It is
 * written as `started` when backup mode begins and rewritten at every step, so
 * a crash leaves a trace; it is validated against this schema on every write
 * and every read.
 *
 * States: started → (snapshotting) → stopped → completed, or failed / aborted
 * from any of them. `stopped` means backup mode ended, the artifacts are
 * stored and the WAL from start to stop is in the repository; `completed`
 * means the snapshots are complete too, and only then is the backup restorable.
 */
import { backupIdPattern } from '../ids.ts';
import * as z from '../zod.ts';
import { ManifestInvalidError } from './errors.ts';

export const manifestSchemaVersion = 1;

export const backupStates = ['started', 'snapshotting', 'stopped', 'completed', 'failed', 'aborted'] as const;
export type BackupState = (typeof backupStates)[number];

const lsn = z.string().check(z.regex(/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/, 'an LSN such as 16/B374D848'));
const walFile = z.string().check(z.regex(/^[0-9A-F]{24}$/, 'a WAL segment name'));
const sha256 = z.string().check(z.regex(/^[0-9a-f]{64}$/, 'a sha256 in hex'));
const timestamp = z.iso.datetime();

export const artifactSchema = z.strictObject({
  /** `backup_label`, `tablespace_map` or the backup history file's name. */
  name: z.string().check(z.regex(/^[A-Za-z0-9_.]+$/)),
  sha256,
  bytes: z.int().check(z.nonnegative()),
});
export type ArtifactRecord = z.infer<typeof artifactSchema>;

/**
 * An absolute path of plain names: letters, digits and `._+@=:,-` in each
 * segment, no `.` or `..` segment, no empty one (a trailing `/` is allowed). A restore target mounts the volume there as root (below its
 * mountRoot), and these paths come from a database host, which may lie: a
 * newline (which `.` in a regex does not match), a control character or a
 * `..` would take the mount out of mountRoot once normalised.
 */
export const plainAbsolutePathPattern = /^(?:\/|(?:\/(?!\.\.?(?:\/|$))[A-Za-z0-9._+@=:,-]+)+\/?)$/;

export const plainAbsolutePath = z
  .string()
  .check(
    z.regex(
      plainAbsolutePathPattern,
      'an absolute path of plain names (letters, digits, ._+@=:,-) without . or .. segments',
    ),
  );

/**
 * What a restore needs to make a volume again from its snapshot and put it
 * back where it was: recorded at backup time from DescribeVolumes (size,
 * type, performance, encryption, zone) and from the host (`begin --volumes`:
 * mount point, file system, what the volume holds). Absent in manifests
 * written before pgsnap recorded it; a restore of those says what is missing.
 */
export const volumeRecordSchema = z.strictObject({
  /** What of the cluster the volume holds, with each part's path on the source host. */
  holds: z
    .array(
      z.strictObject({
        role: z.enum(['data', 'tablespace', 'wal']),
        path: plainAbsolutePath,
        tablespaceOid: z.optional(z.string().check(z.regex(/^\d+$/))),
      }),
    )
    .check(z.minLength(1)),
  mountPoint: plainAbsolutePath,
  fstype: z.string(),
  fsUuid: z.optional(z.string()),
  /** The partition number, when the file system is on a partition of the volume. */
  partition: z.optional(z.int().check(z.positive())),
  /** The attachment's device name (/dev/sdf), as EC2 reports it. */
  deviceName: z.optional(z.string()),
  sizeGiB: z.int().check(z.positive()),
  volumeType: z.string(),
  iops: z.optional(z.int().check(z.positive())),
  throughput: z.optional(z.int().check(z.positive())),
  encrypted: z.boolean(),
  kmsKeyId: z.optional(z.string()),
  availabilityZone: z.string(),
});
export type VolumeRecord = z.infer<typeof volumeRecordSchema>;

export const manifestSnapshotSchema = z.strictObject({
  provider: z.string(),
  snapshotId: z.string(),
  volumeId: z.optional(z.string()),
  state: z.optional(z.string()),
  /** Local providers: what the snapshot holds and where it was taken, so a drill can put it back. */
  role: z.optional(z.enum(['data', 'tablespace', 'wal'])),
  path: z.optional(z.string()),
  tablespaceOid: z.optional(z.string().check(z.regex(/^\d+$/))),
  /** EBS: the source volume, as a restore makes it again. */
  volume: z.optional(volumeRecordSchema),
});
export type ManifestSnapshot = z.infer<typeof manifestSnapshotSchema>;

/**
 * One disaster-recovery copy of one snapshot of the set, in another region or
 * account. The source manifest and the DR-side manifest carry the same list.
 */
export const manifestCopySchema = z.strictObject({
  account: z.string().check(z.regex(/^\d{12}$/)),
  region: z.string(),
  sourceSnapshotId: z.string(),
  /** Absent when the copy could not even be started. */
  snapshotId: z.optional(z.string()),
  volumeId: z.optional(z.string()),
  /** EC2's snapshot state (pending, completed, error), or `failed` when pgsnap gave the copy up. */
  state: z.string(),
  reason: z.optional(z.string()),
});
export type ManifestCopy = z.infer<typeof manifestCopySchema>;

export const manifestSchema = z.strictObject({
  schemaVersion: z.literal(manifestSchemaVersion),
  cluster: z.string(),
  backupId: z.string().check(z.regex(backupIdPattern)),
  label: z.string(),
  state: z.enum(backupStates),
  systemIdentifier: z.string().check(z.regex(/^\d+$/)),
  serverVersion: z.string(),
  /**
   * What a restore target must match beyond the major version (pgsnap doctor --restore-target): the
   * libraries the server preloads and the uid that owns its data directory. Absent when the backup role
   * could not read them (a superuser or pg_read_all_settings can).
   */
  server: z.optional(
    z.strictObject({
      sharedPreloadLibraries: z.optional(z.array(z.string())),
      uid: z.optional(z.int().check(z.nonnegative())),
    }),
  ),
  backupFrom: z.enum(['primary', 'standby']),
  walSegmentSize: z.int().check(z.positive()),
  timeline: z.int().check(z.positive()),
  startLsn: lsn,
  startWalFile: walFile,
  stopLsn: z.optional(lsn),
  stopWalFile: z.optional(walFile),
  stopTimeline: z.optional(z.int().check(z.positive())),
  /** The WAL a restore needs, first and last segment inclusive. */
  wal: z.optional(z.strictObject({ first: walFile, last: walFile })),
  artifacts: z.array(artifactSchema),
  snapshots: z.array(manifestSnapshotSchema),
  /** Disaster-recovery copies of the snapshots; absent when the backup is not copied. */
  copies: z.optional(z.array(manifestCopySchema)),
  timings: z.strictObject({
    startedAt: timestamp,
    stoppedAt: z.optional(timestamp),
    completedAt: z.optional(timestamp),
    /** From pg_backup_stop until the stop segment was archived. */
    archiveWaitMs: z.optional(z.int().check(z.nonnegative())),
  }),
  failure: z.optional(z.strictObject({ reason: z.string(), at: timestamp })),
  /** Why a backup that ended stays short of `completed` (no snapshot was recorded for it). */
  note: z.optional(z.string()),
  host: z.string(),
  updatedAt: timestamp,
});

export type Manifest = z.infer<typeof manifestSchema>;

export function validateManifest(value: unknown, where: string): Manifest {
  const parsed = manifestSchema.safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`);
    throw new ManifestInvalidError(`${where} is not a valid manifest: ${problems.join('; ')}`);
  }
  return parsed.data;
}

export function parseManifest(bytes: Buffer, where: string): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ManifestInvalidError(`${where} is not JSON; it was truncated or edited`);
  }
  if ((value as { schemaVersion?: unknown })?.schemaVersion !== manifestSchemaVersion) {
    throw new ManifestInvalidError(
      `${where} has schemaVersion ${JSON.stringify((value as { schemaVersion?: unknown })?.schemaVersion)}; ` +
        `this pgsnap reads version ${manifestSchemaVersion}: upgrade pgsnap`,
    );
  }
  return validateManifest(value, where);
}

/**
 * Oldest first. A backupId sorts by its start to the second, then by a random
 * suffix: two backups started within one second (back-to-back `pgsnap run`)
 * are ordered by their manifests' start time, to the millisecond, so that
 * "the newest" is the one that started last.
 */
export function byStart(a: Manifest, b: Manifest): number {
  return (
    a.backupId.slice(0, 16).localeCompare(b.backupId.slice(0, 16)) ||
    Date.parse(a.timings.startedAt) - Date.parse(b.timings.startedAt) ||
    a.backupId.localeCompare(b.backupId)
  );
}

/** The manifest's `server` field from what the backup read, or nothing when it read neither. */
export function serverRecord(
  sharedPreloadLibraries: string[] | undefined,
  uid: number | undefined,
): Pick<Manifest, 'server'> {
  if (!sharedPreloadLibraries && uid === undefined) return {};
  return {
    server: {
      ...(sharedPreloadLibraries ? { sharedPreloadLibraries } : {}),
      ...(uid !== undefined ? { uid } : {}),
    },
  };
}
