/**
 * The agent's side of the catalog: `begin` writes the manifest as `started`,
 * `end` stores the artifacts beside the WAL and completes the manifest,
 * `abort` marks it aborted. Until `end` has stored everything, the artifacts
 * stay in the local state directory (stopped.json) and `end` can be run again.
 */

import { hostname } from 'node:os';
import { applyStep, checkStep, recordStep } from '#domain/backup/lifecycle';
import { messageOf, PreconditionError } from '#domain/errors';
import type { ClusterIdentity } from '#domain/repository/cluster-pin';
import { RepositoryUnreachableError } from '#domain/repository/errors';
import {
  type ArtifactRecord,
  type Manifest,
  type ManifestSnapshot,
  serverRecord,
} from '#domain/repository/manifest';
import type { Repository } from '#domain/repository/repository';
import { walOfBackup } from '#domain/wal/file';
import { open, type RepositoryChoice } from '../host/repository.ts';
import type { BackupSession, StoppedRecord } from '../host/state.ts';
import type { VolumeSnapshot } from '../providers/provider.ts';

/**
 * A WAL segment between the backup's start and stop is not in the repository when `end` catalogues the
 * backup: a mistake in archive_command.
 *
 * What to do: Check that archive_command archives into the same `--repo` and `--cluster` as the backup
 * (`pgsnap doctor` says), then take the backup again.
 */
export class WalMissingError extends PreconditionError {
  override name = 'WalMissingError';
}

function identityOf(session: BackupSession): ClusterIdentity {
  const { versionNum } = session;
  return {
    systemIdentifier: session.systemIdentifier,
    walSegmentSize: session.segmentSize,
    ...(versionNum
      ? {
          pgVersion:
            versionNum >= 100000
              ? String(Math.floor(versionNum / 10000))
              : `${Math.floor(versionNum / 10000)}.${Math.floor(versionNum / 100) % 100}`,
        }
      : {}),
  };
}

function startedManifest(repository: Repository, session: BackupSession): Manifest {
  const now = new Date().toISOString();
  return {
    schemaVersion: 1,
    cluster: repository.cluster,
    backupId: session.backupId,
    label: session.label,
    state: 'started',
    systemIdentifier: session.systemIdentifier,
    serverVersion: session.serverVersion,
    ...serverRecord(session.sharedPreloadLibraries, session.serverUid),
    backupFrom: session.fromStandby ? 'standby' : 'primary',
    walSegmentSize: session.segmentSize,
    timeline: session.timeline,
    startLsn: session.startLsn,
    startWalFile: session.startWalFile,
    artifacts: [],
    snapshots: [],
    timings: { startedAt: session.startedAt },
    host: hostname(),
    updatedAt: now,
  };
}

/** Retries what failed because the repository could not be reached, a few times over about 15 s. */
async function withRetry<T>(what: string, progress: (message: string) => void, fn: () => Promise<T>) {
  for (let attempt = 1, delayMs = 1_000; ; attempt++, delayMs *= 2) {
    try {
      return await fn();
    } catch (error) {
      if (!(error instanceof RepositoryUnreachableError) || attempt >= 5) throw error;
      progress(`${what}: ${messageOf(error)}; trying again in ${delayMs / 1000}s`);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

/**
 * Pins the cluster in the repository and writes the manifest as `started`; with `manifest: false`
 * (a host answering the state machine) only the pin, which is write-once: the state machine records
 * the manifest from what begin proposes.
 */
export async function recordStarted(
  choice: RepositoryChoice,
  session: BackupSession,
  options: { manifest: boolean } = { manifest: true },
): Promise<Manifest | undefined> {
  const repository = await open(choice);
  try {
    await repository.pin(identityOf(session), 'pgsnap begin');
    if (!options.manifest) return undefined;
    const { manifest } = await recordStep(repository, session.backupId, {
      step: 'begin',
      manifest: startedManifest(repository, session),
    });
    return manifest!;
  } finally {
    repository.close();
  }
}

export interface StoredBackup {
  /** The manifest's state afterwards (as the orchestrator left it, when this end only proposes). */
  state: Manifest['state'] | 'none';
  /** Where each artifact is in the repository, by name. */
  urls: Record<string, string>;
  manifestUrl: string;
}

/**
 * Checks that the WAL from start to stop is in the repository, stores the
 * artifacts byte for byte, and writes the manifest as `completed` (or
 * `stopped` while snapshots are still being taken). Throws, leaving the manifest
 * as it was, when any of that fails, and before storing anything when the
 * manifest no longer allows it (the backup was aborted or failed meanwhile).
 * A second end after one that wrote the manifest leaves it as it is.
 */
export async function storeBackup(
  choice: RepositoryChoice,
  stopped: StoppedRecord,
  artifacts: Array<{ name: string; content: string }>,
  options: {
    archiveWaitMs: number;
    snapshotsPending: boolean;
    /** False: store the artifacts and check the WAL, but leave the manifest to the orchestrator. */
    record?: boolean;
    progress: (message: string) => void;
  },
): Promise<StoredBackup> {
  const repository = await open(choice);
  try {
    return await withRetry('storing the backup in the repository', options.progress, async () => {
      const pin = await repository.pin(identityOf(stopped), 'pgsnap end');
      const target = { backupId: stopped.backupId, where: repository.url };
      const begun = startedManifest(repository, stopped);
      const step = options.snapshotsPending ? ('stop' as const) : ('end' as const);
      // Before anything is stored: a backup aborted or failed meanwhile must not get artifacts.
      const current = await repository.readManifest(stopped.backupId);
      checkStep(current, step, target);
      const needed = walOfBackup(stopped, stopped, pin.walSegmentSize);
      if (stopped.historyFileName) needed.push(stopped.historyFileName);
      const missing: string[] = [];
      for (const name of needed) if (!(await repository.hasWal(pin, name))) missing.push(name);
      if (missing.length > 0) {
        throw new WalMissingError(
          `the server archived ${missing.join(', ')} but not into ${repository.url}: archive_command must be ` +
            `pgsnap wal-push %p --repo ${choice.url} --cluster ${choice.cluster}. Push them with pgsnap wal-push ` +
            'from the archive, then run pgsnap end again (the artifacts are kept)',
        );
      }
      const records: ArtifactRecord[] = [];
      const urls: Record<string, string> = {};
      for (const artifact of artifacts) {
        records.push(
          await repository.putArtifact(stopped.backupId, artifact.name, Buffer.from(artifact.content)),
        );
        urls[artifact.name] = repository.where(repository.backupKey(stopped.backupId, artifact.name));
      }
      const manifestUrl = repository.where(repository.backupKey(stopped.backupId, 'manifest.json'));
      if (options.record === false) return { state: current?.state ?? 'none', urls, manifestUrl };
      const { manifest, changed } = applyStep(
        await repository.readManifest(stopped.backupId),
        {
          step,
          begun,
          stop: {
            stopLsn: stopped.stopLsn,
            stopWalFile: stopped.stopWalFile,
            stopTimeline: stopped.stopTimeline,
            wal: { first: stopped.startWalFile, last: stopped.stopWalFile },
            artifacts: records,
            stoppedAt: stopped.stoppedAt,
            archiveWaitMs: options.archiveWaitMs,
          },
        },
        target,
      );
      if (changed) await repository.writeManifest(manifest!);
      return { state: manifest!.state, urls, manifestUrl };
    });
  } finally {
    repository.close();
  }
}

/**
 * Records the snapshots a local provider took, as soon as they exist, so that
 * none can be orphaned unnoticed (`taken`: the manifest goes `started` →
 * `snapshotting` with them), that they were deleted with a backup given up
 * (`deleted`), or the provider's own account of the snapshots the state
 * machine recorded through the local EC2 (`described`, for a drill).
 */
export async function recordLocalSnapshots(
  choice: RepositoryChoice,
  backupId: string,
  provider: string,
  snapshots: VolumeSnapshot[],
  state: 'taken' | 'deleted' | 'described',
): Promise<void> {
  const records: ManifestSnapshot[] = snapshots.map((s) => ({
    provider,
    snapshotId: s.snapshot,
    state: state === 'deleted' ? 'deleted' : 'taken',
    role: s.role,
    path: s.source,
    ...(s.oid ? { tablespaceOid: s.oid } : {}),
  }));
  const step = (
    { taken: 'snapshotsTaken', deleted: 'snapshotsDeleted', described: 'snapshotsDescribed' } as const
  )[state];
  const repository = await open(choice);
  try {
    await recordStep(repository, backupId, { step, snapshots: records });
  } finally {
    repository.close();
  }
}

/**
 * Records the snapshots an operator's command took (`pgsnap run -- CMD` printing `pgsnap-snapshot: REF`,
 * `pgsnap end --snapshot REF`) by their references: on one machine without AWS the agent is the
 * orchestrator, and these are its account of the snapshot set.
 */
export async function recordSnapshotReferences(
  choice: RepositoryChoice,
  backupId: string,
  references: string[],
): Promise<void> {
  const repository = await open(choice);
  try {
    await recordStep(repository, backupId, {
      step: 'snapshotsTaken',
      snapshots: references.map((reference) => ({
        provider: 'command',
        snapshotId: reference,
        state: 'taken',
      })),
    });
  } finally {
    repository.close();
  }
}

/**
 * Marks a catalogued backup as ended without being usable; a backup never
 * catalogued, or one that already ended so, is left alone (see domain/backup/lifecycle.ts).
 */
export async function recordEnded(
  choice: RepositoryChoice,
  backupId: string,
  state: 'aborted' | 'failed',
  reason: string,
): Promise<void> {
  const repository = await open(choice);
  try {
    await recordStep(repository, backupId, { step: state === 'aborted' ? 'abort' : 'fail', reason });
  } finally {
    repository.close();
  }
}
