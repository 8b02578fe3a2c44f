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
import { z } from 'zod';
import { ManifestInvalidError } from './errors.ts';

export const manifestSchemaVersion = 1;

export const backupStates = ['started', 'snapshotting', 'stopped', 'completed', 'failed', 'aborted'] as const;
export type BackupState = (typeof backupStates)[number];

const lsn = z.string().regex(/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/, 'an LSN such as 16/B374D848');
const walFile = z.string().regex(/^[0-9A-F]{24}$/, 'a WAL segment name');
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 in hex');
const timestamp = z.iso.datetime();

export const artifactSchema = z.strictObject({
  /** `backup_label`, `tablespace_map` or the backup history file's name. */
  name: z.string().regex(/^[A-Za-z0-9_.]+$/),
  sha256,
  bytes: z.number().int().nonnegative(),
});
export type ArtifactRecord = z.infer<typeof artifactSchema>;

export const manifestSnapshotSchema = z.strictObject({
  provider: z.string(),
  snapshotId: z.string(),
  volumeId: z.string().optional(),
  state: z.string().optional(),
  /** Local providers: what the snapshot holds and where it was taken, so a drill can put it back. */
  role: z.enum(['data', 'tablespace', 'wal']).optional(),
  path: z.string().optional(),
  tablespaceOid: z.string().regex(/^\d+$/).optional(),
});
export type ManifestSnapshot = z.infer<typeof manifestSnapshotSchema>;

/**
 * One disaster-recovery copy of one snapshot of the set, in another region or
 * account. The source manifest and the DR-side manifest carry the same list.
 */
export const manifestCopySchema = z.strictObject({
  account: z.string().regex(/^\d{12}$/),
  region: z.string(),
  sourceSnapshotId: z.string(),
  /** Absent when the copy could not even be started. */
  snapshotId: z.string().optional(),
  volumeId: z.string().optional(),
  /** EC2's snapshot state (pending, completed, error), or `failed` when pgsnap gave the copy up. */
  state: z.string(),
  reason: z.string().optional(),
});
export type ManifestCopy = z.infer<typeof manifestCopySchema>;

export const manifestSchema = z.strictObject({
  schemaVersion: z.literal(manifestSchemaVersion),
  cluster: z.string(),
  backupId: z.string().regex(/^\d{8}T\d{6}Z-[0-9a-f]{6}$/),
  label: z.string(),
  state: z.enum(backupStates),
  systemIdentifier: z.string().regex(/^\d+$/),
  serverVersion: z.string(),
  backupFrom: z.enum(['primary', 'standby']),
  walSegmentSize: z.number().int().positive(),
  timeline: z.number().int().positive(),
  startLsn: lsn,
  startWalFile: walFile,
  stopLsn: lsn.optional(),
  stopWalFile: walFile.optional(),
  stopTimeline: z.number().int().positive().optional(),
  /** The WAL a restore needs, first and last segment inclusive. */
  wal: z.strictObject({ first: walFile, last: walFile }).optional(),
  artifacts: z.array(artifactSchema),
  snapshots: z.array(manifestSnapshotSchema),
  /** Disaster-recovery copies of the snapshots; absent when the backup is not copied. */
  copies: z.array(manifestCopySchema).optional(),
  timings: z.strictObject({
    startedAt: timestamp,
    stoppedAt: timestamp.optional(),
    completedAt: timestamp.optional(),
    /** From pg_backup_stop until the stop segment was archived. */
    archiveWaitMs: z.number().int().nonnegative().optional(),
  }),
  failure: z.strictObject({ reason: z.string(), at: timestamp }).optional(),
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
