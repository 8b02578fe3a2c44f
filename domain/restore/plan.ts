/**
 * What the restore state machine checks before it makes anything: the backup
 * exists and is completed, its artifacts verify, every snapshot carries what
 * a restore needs to make its volume again, the target is after the backup's
 * consistency point, and the WAL from the backup's start is in the
 * repository without a gap. Nothing is created for a request that fails
 * here; the restore record says why. RestorePlan is the state every later
 * step of the restore state machine reads.
 */
import { ManifestStateError, PreconditionError, WalGapError } from '../errors.ts';
import type { Manifest, VolumeRecord } from '../repository/manifest.ts';
import { newestBackup } from '../repository/newest.ts';
import type { Repository } from '../repository/repository.ts';
import {
  type RecoveryTargetRequest,
  type RestoreMode,
  type RestoreRecord,
  type RestoreVolume,
  restoreRecordSchemaVersion,
} from '../repository/restore-record.ts';
import { parseSegmentName, segmentName } from '../wal/file.ts';
import { parseLsn, walFileName } from '../wal/lsn.ts';
import { modelFullSpeed, planInitializationRate } from './full-speed.ts';
import type { HostTime } from './host-time.ts';
import type { InstanceRequest, RestoreRequest } from './request.ts';

/** The state the restore state machine carries between its steps. */
export interface RestorePlan {
  restoreId: string;
  cluster: string;
  backupId: string;
  repository: string;
  mode: RestoreMode;
  /** The request's instance: given, or to launch. */
  instance: InstanceRequest;
  /** How the volumes are made: re-encrypted with another key, at a provisioned initialization rate. */
  volumeOptions: { kmsKeyId?: string; initializationRate?: number };
  /** The metrics and event of the outcome, by mode (a drill counts as a drill). */
  outcome: { succeeded: string; failed: string; rto: string; fullSpeed: string; completedEvent: string };
  /** Where recovery stops, in words. */
  recoveryTarget: string;
  /** The host's recovery timeout and the host step's own, sized for this backup (host-time.ts). */
  hostTime: HostTime;
}

/** The newest completed backup of the cluster, or the one asked for, which must be completed. */
export async function backupToRestore(repository: Repository, backupId: string): Promise<Manifest> {
  if (backupId !== 'latest') {
    const manifest = await repository.readManifest(backupId);
    if (!manifest) {
      throw new ManifestStateError(
        `there is no backup ${backupId} of ${repository.cluster} in ${repository.url}; pgsnap backups list shows what there is`,
        { backupId, state: 'none' },
      );
    }
    if (manifest.state !== 'completed') {
      throw new ManifestStateError(
        `backup ${backupId} is ${manifest.state}, not completed${manifest.failure ? ` (${manifest.failure.reason})` : ''}; ` +
          'only a completed backup can be restored: choose another with pgsnap backups list',
        { backupId, state: manifest.state },
      );
    }
    return manifest;
  }
  const { manifest, read } = await newestBackup(repository, (m) => m.state === 'completed');
  if (manifest) return manifest;
  throw new ManifestStateError(
    `${repository.url} has no completed backup of ${repository.cluster} to restore (${read} backups, none completed)`,
  );
}

/** Every artifact of the manifest, read back and checked against its sha256 and size. */
export async function verifyArtifacts(repository: Repository, manifest: Manifest): Promise<void> {
  if (!manifest.artifacts.some((a) => a.name === 'backup_label')) {
    throw new PreconditionError(`backup ${manifest.backupId} has no backup_label; it cannot be restored`);
  }
  // readArtifact throws CorruptObjectError on a wrong digest or size.
  for (const artifact of manifest.artifacts) await repository.readArtifact(manifest.backupId, artifact);
}

/** The snapshots a restore makes volumes from, with what each volume needs; refuses a manifest that lacks it. */
export function volumesToRestore(manifest: Manifest): RestoreVolume[] {
  const ebs = manifest.snapshots;
  const missing = ebs.filter((s) => !s.volume).map((s) => s.snapshotId);
  if (ebs.length === 0 || missing.length > 0) {
    throw new PreconditionError(
      `backup ${manifest.backupId} does not record what its volumes were (mount point, file system, size, type) ` +
        `for ${missing.length > 0 ? `snapshot ${missing.join(', ')}` : 'any snapshot'}: it was taken before pgsnap kept ` +
        'them in the manifest. Restore it by hand (README, "Restoring by hand"), or restore a newer backup.',
    );
  }
  if (!ebs.some((s) => s.volume!.holds.some((h) => h.role === 'data'))) {
    throw new PreconditionError(`backup ${manifest.backupId} has no snapshot of its data directory`);
  }
  return ebs.map((s) => ({ snapshotId: s.snapshotId, source: s.volume as VolumeRecord }));
}

/** The target in the words of the flags (`--target-time …`), for messages and the record. */
export function describeTarget(target: RecoveryTargetRequest | undefined): string {
  if (!target) return 'the end of the archived WAL';
  if ('time' in target) return `time ${target.time}`;
  if ('lsn' in target) return `LSN ${target.lsn}`;
  if ('name' in target) return `restore point ${target.name}`;
  return "the backup's consistency point (immediate)";
}

/** A target before the consistency point would stop recovery on files that are not consistent yet. */
export function checkTargetAfterConsistency(
  target: RecoveryTargetRequest | undefined,
  manifest: Manifest,
): void {
  if (!target) return;
  const stop = `the backup's consistency point (${manifest.stopLsn} at ${manifest.timings.stoppedAt})`;
  if (
    'lsn' in target &&
    manifest.stopLsn &&
    parseLsn(target.lsn.toUpperCase()) < parseLsn(manifest.stopLsn)
  ) {
    throw new PreconditionError(
      `the target LSN ${target.lsn} is before ${stop}: choose a later target, or restore an earlier backup`,
    );
  }
  if (
    'time' in target &&
    manifest.timings.stoppedAt &&
    Date.parse(target.time) < Date.parse(manifest.timings.stoppedAt)
  ) {
    throw new PreconditionError(
      `the target time ${target.time} is before ${stop}: choose a later time, or restore an earlier backup`,
    );
  }
}

/** How long the WAL check may list before it settles for what it has seen (within a 60 s Lambda). */
export const walCheckBudgetMs = 40_000;

/**
 * The WAL a restore reads, from the backup's first segment: every segment to
 * the consistency point must be there, and from there on the archive must be
 * without a hole up to its newest segment on the backup's timeline (or up to
 * the target LSN's segment). A time or a restore point cannot be placed in a
 * segment before recovery reads it, so for those the whole archived run
 * after the backup counts.
 *
 * The listing starts after the segment before the backup's first (S3's
 * StartAfter), goes in name order, which on one timeline is segment order,
 * and stops at the first name of a later timeline: a cluster with a million
 * archived segments costs the check only the segments since the backup, one
 * page in memory at a time. Past `budgetMs`, once every segment the restore
 * needs has been seen, it stops and records the last segment it saw
 * (`checkedTo`): recovery reports any hole after that itself.
 */
export async function checkWalContinuity(
  repository: Repository,
  manifest: Manifest,
  target: RecoveryTargetRequest | undefined,
  budgetMs = walCheckBudgetMs,
): Promise<{ first: string; last: string | undefined; stopLsn: string; checkedTo?: string }> {
  const size = manifest.walSegmentSize;
  const first = manifest.wal?.first ?? manifest.startWalFile;
  const stopFile = manifest.wal?.last ?? manifest.stopWalFile;
  if (!manifest.stopLsn || !stopFile) {
    throw new PreconditionError(
      `backup ${manifest.backupId} has no stop LSN: it never ended and cannot be restored`,
    );
  }
  const timeline = parseSegmentName(first, size).timeline;
  const from = parseSegmentName(first, size).segno;
  const needed =
    target && 'lsn' in target
      ? parseSegmentName(walFileName(timeline, parseLsn(target.lsn.toUpperCase()), size), size).segno
      : parseSegmentName(stopFile, size).segno;
  const gap = (segno: bigint, newest: bigint | undefined): WalGapError => {
    const name = segmentName(timeline, segno, size);
    const why =
      segno <= needed
        ? `the restore needs every segment from ${first} to ${segmentName(timeline, needed, size)}`
        : `later segments (up to ${segmentName(timeline, newest ?? segno, size)}) are archived, so recovery would stop at the hole`;
    return new WalGapError(
      `WAL segment ${name} of ${repository.cluster} is missing from ${repository.url}: ${why}. ` +
        "Check the source's archiving (pg_stat_archiver, pgsnap doctor) or choose a target before it.",
    );
  };
  const deadline = Date.now() + budgetMs;
  const startAfter = from > 0n ? segmentName(timeline, from - 1n, size) : undefined;
  let expected = from;
  let cut = false;
  for await (const name of repository.scanWal(startAfter)) {
    if (!/^[0-9A-F]{24}$/.test(name)) continue;
    const segment = parseSegmentName(name, size);
    if (segment.timeline > timeline) break;
    if (segment.timeline < timeline || segment.segno < expected) continue;
    if (segment.segno > expected) throw gap(expected, segment.segno);
    expected = segment.segno + 1n;
    if (expected > needed && Date.now() >= deadline) {
      cut = true;
      break;
    }
  }
  if (expected <= needed) throw gap(expected, undefined);
  const last = expected > from ? segmentName(timeline, expected - 1n, size) : undefined;
  return { first, last, stopLsn: manifest.stopLsn, ...(cut && last ? { checkedTo: last } : {}) };
}

/**
 * How the volumes will initialize: at the rate asked for, at the slowest rate
 * that meets `fullSpeedMinutes` (refused when none can), or at EBS's default;
 * sized by the recorded volume sizes, an upper bound of the data a snapshot
 * holds, and by the largest volume, since each initializes at its own rate.
 */
export function planInitialization(
  volumes: RestoreVolume[],
  request: Pick<RestoreRequest, 'initializationRate' | 'fullSpeedMinutes'>,
): NonNullable<RestoreRecord['initialization']> {
  if (request.initializationRate && request.fullSpeedMinutes) {
    throw new PreconditionError(
      'give either an initialization rate or a full-speed objective, not both: the objective chooses the rate',
    );
  }
  const sizes = volumes.map((v) => v.source.sizeGiB * 2 ** 30);
  const chosen = request.fullSpeedMinutes
    ? planInitializationRate(sizes, request.fullSpeedMinutes)
    : modelFullSpeed(Math.max(0, ...sizes), request.initializationRate);
  const billedGiB =
    chosen.basis === 'provisioned' ? Math.ceil(sizes.reduce((a, b) => a + b, 0) / 2 ** 30) : undefined;
  return {
    rateMiBps: chosen.rateMiBps,
    basis: chosen.basis,
    fullSpeedSeconds: chosen.seconds,
    ...(request.fullSpeedMinutes ? { objectiveMinutes: request.fullSpeedMinutes } : {}),
    ...(billedGiB !== undefined ? { billedGiB } : {}),
  };
}

/** The record of a restore request that passed every check, before anything is made. */
export async function planRestore(
  repository: Repository,
  request: RestoreRequest & { restoreId: string; repository: string },
  now = new Date(),
): Promise<RestoreRecord> {
  const manifest = await backupToRestore(repository, request.backupId);
  checkTargetAfterConsistency(request.target, manifest);
  await verifyArtifacts(repository, manifest);
  const volumes = volumesToRestore(manifest);
  const wal = await checkWalContinuity(repository, manifest, request.target);
  const initialization = planInitialization(volumes, request);
  return {
    schemaVersion: restoreRecordSchemaVersion,
    restoreId: request.restoreId,
    cluster: request.cluster,
    backupId: manifest.backupId,
    mode: request.mode,
    state: 'requested',
    ...(request.target ? { target: request.target } : {}),
    checks: request.checks,
    ...(request.primaryConninfo ? { primaryConninfo: request.primaryConninfo } : {}),
    ...(request.mountRoot ? { mountRoot: request.mountRoot } : {}),
    ...(request.port ? { port: request.port } : {}),
    repository: request.repository,
    volumes,
    wal,
    initialization,
    timings: { requestedAt: now.toISOString() },
    updatedAt: now.toISOString(),
  };
}
