/**
 * What a database host proposes and the orchestrator records (DESIGN.md
 * "Trust: the orchestrator records, hosts only propose"). In AWS the host
 * answers begin and end through its task token and writes no manifest (its
 * policies and the bucket policy deny it); the Lambdas record the manifest
 * from these proposals, checked against what they trust: the cluster pin
 * (write-once) for the system identifier, the artifacts' own bytes in the
 * repository for their digests, the WAL in the repository for the range the
 * backup needs, EC2 for the snapshots (create-snapshot-set.ts, check-snapshots).
 */
import { ManifestStateError, PreconditionError } from '../errors.ts';
import { backupIdSchema } from '../ids.ts';
import { type ArtifactRecord, type Manifest, serverRecord } from '../repository/manifest.ts';
import type { Repository } from '../repository/repository.ts';
import { walOfBackup } from '../wal/file.ts';
import * as z from '../zod.ts';
import { recordStep } from './lifecycle.ts';

const lsn = z.string().check(z.regex(/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/));
const walFile = z.string().check(z.regex(/^[0-9A-F]{24}$/));

/** `pgsnap begin`'s answer (agent/commands/begin.ts, beginDocument): what it says it started. */
export const beginProposalSchema = z.object({
  backupId: backupIdSchema,
  label: z.string(),
  startLsn: lsn,
  startWalFile: walFile,
  timeline: z.int().check(z.positive()),
  systemIdentifier: z.string().check(z.regex(/^\d+$/)),
  serverVersion: z.string(),
  startedAt: z.iso.datetime(),
  backupFrom: z.enum(['primary', 'standby']),
  walSegmentSize: z.optional(z.int().check(z.positive())),
  /** Advice for a restore target (pgsnap doctor --restore-target), never acted on by a privileged actor. */
  sharedPreloadLibraries: z.optional(z.array(z.string().check(z.maxLength(200))).check(z.maxLength(100))),
  serverUid: z.optional(z.int().check(z.nonnegative())),
});
export type BeginProposal = z.infer<typeof beginProposalSchema>;

/** `pgsnap end`'s answer (agent/session/end.ts, EndResult): the stop and the artifacts it stored. */
export const endProposalSchema = z.object({
  backupId: backupIdSchema,
  stopLsn: lsn,
  stopWalFile: walFile,
  stopTimeline: z.int().check(z.positive()),
  stoppedAt: z.iso.datetime(),
  archiveWaitMs: z.number().check(z.nonnegative()),
  artifacts: z
    .array(
      z.object({
        // backup_label, tablespace_map, the backup history file (<segment>.<offset>.backup), a timeline's history.
        name: z
          .string()
          .check(
            z.regex(/^(backup_label|tablespace_map|[0-9A-F]{24}\.[0-9A-F]{8}\.backup|[0-9A-F]{8}\.history)$/),
          ),
        sha256: z.string().check(z.regex(/^[0-9a-f]{64}$/)),
        bytes: z.int().check(z.nonnegative()),
      }),
    )
    .check(z.minLength(1)),
});
export type EndProposal = z.infer<typeof endProposalSchema>;

/**
 * Records the backup as started from begin's proposal, unless a manifest is
 * there already (a retried step; begin's own, on one machine without AWS).
 * The proposal must be for this backup, and of the cluster the repository is
 * pinned to.
 */
export async function recordBegun(
  repository: Repository,
  backupId: string,
  proposal: BeginProposal,
  host: string,
): Promise<Manifest> {
  const existing = await repository.readManifest(backupId);
  if (existing) return existing;
  if (proposal.backupId !== backupId) {
    throw new ManifestStateError(
      `recording backup ${backupId} as started: the host answered for backup ${proposal.backupId}`,
      { backupId, state: 'none' },
    );
  }
  const pin = await repository.requirePin();
  if (pin.systemIdentifier !== proposal.systemIdentifier) {
    throw new PreconditionError(
      `recording backup ${backupId} as started: the host says system identifier ` +
        `${proposal.systemIdentifier}, the repository ${repository.url} is pinned to ${pin.systemIdentifier}`,
    );
  }
  const now = new Date().toISOString();
  const { manifest } = await recordStep(repository, backupId, {
    step: 'begin',
    manifest: {
      schemaVersion: 1,
      cluster: repository.cluster,
      backupId,
      label: proposal.label,
      state: 'started',
      systemIdentifier: proposal.systemIdentifier,
      serverVersion: proposal.serverVersion,
      ...serverRecord(proposal.sharedPreloadLibraries, proposal.serverUid),
      backupFrom: proposal.backupFrom,
      walSegmentSize: pin.walSegmentSize,
      timeline: proposal.timeline,
      startLsn: proposal.startLsn,
      startWalFile: proposal.startWalFile,
      artifacts: [],
      snapshots: [],
      timings: { startedAt: proposal.startedAt },
      host,
      updatedAt: now,
    },
  });
  return manifest!;
}

/**
 * Records the stop from end's proposal, once the orchestrator has checked it:
 * each artifact's bytes in the repository hash to what the host says (read
 * and hashed here, not taken from the host), and every WAL segment from the
 * recorded start to the proposed stop is in the repository. A stop already
 * recorded (a retried step) is left as it is.
 */
export async function recordStopped(
  repository: Repository,
  backupId: string,
  proposal: EndProposal,
): Promise<Manifest> {
  const current = await repository.readManifest(backupId);
  if (!current) {
    throw new ManifestStateError(`recording the end of backup ${backupId}: there is no manifest`, {
      backupId,
      state: 'none',
    });
  }
  if (current.state === 'stopped' || current.state === 'completed') return current;
  if (proposal.backupId !== backupId) {
    throw new ManifestStateError(
      `recording the end of backup ${backupId}: the host answered for backup ${proposal.backupId}`,
      { backupId, state: current.state },
    );
  }
  const artifacts: ArtifactRecord[] = [];
  for (const artifact of proposal.artifacts) {
    // Throws CorruptObjectError when the stored bytes are not the ones proposed.
    await repository.readArtifact(backupId, artifact);
    artifacts.push({ name: artifact.name, sha256: artifact.sha256, bytes: artifact.bytes });
  }
  if (!artifacts.some((a) => a.name === 'backup_label')) {
    throw new PreconditionError(`recording the end of backup ${backupId}: the host stored no backup_label`);
  }
  const pin = await repository.requirePin();
  const needed = walOfBackup(current, proposal, pin.walSegmentSize);
  const missing: string[] = [];
  for (const name of needed) if (!(await repository.hasWal(pin, name))) missing.push(name);
  if (missing.length > 0) {
    throw new PreconditionError(
      `recording the end of backup ${backupId}: WAL ${missing.join(', ')} is not in ${repository.url}; ` +
        'the backup cannot be restored',
    );
  }
  const { manifest } = await recordStep(repository, backupId, {
    step: 'stop',
    begun: current,
    stop: {
      stopLsn: proposal.stopLsn,
      stopWalFile: proposal.stopWalFile,
      stopTimeline: proposal.stopTimeline,
      wal: { first: current.startWalFile, last: proposal.stopWalFile },
      artifacts,
      stoppedAt: proposal.stoppedAt,
      archiveWaitMs: proposal.archiveWaitMs,
    },
  });
  return manifest!;
}
