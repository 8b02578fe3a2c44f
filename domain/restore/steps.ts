/**
 * The restore state machine's steps that are not EC2 calls alone: the first
 * step (the request checked and recorded), the record updated at each phase,
 * and the host's report judged. The state every step reads is RestorePlan;
 * everything else is in the restore record.
 */
import { InvalidInputError, RestoreCheckFailedError } from '../errors.ts';
import { parseWith } from '../parse.ts';
import type { Repository } from '../repository/repository.ts';
import * as z from '../zod.ts';
import { type HostReport, hostReportSchema } from './host-report.ts';
import { describeTarget, planRestore } from './plan.ts';
import {
  type RestoreRecord,
  type RestoreVolume,
  recordDigest,
  restoreRecordSchemaVersion,
  validateRestoreRecord,
} from './record.ts';
import {
  type InstanceRequest,
  type RestoreMode,
  type RestoreRequest,
  restoreIdOfExecution,
  restoreRequestSchema,
} from './request.ts';

/** What the restore Lambdas know of each cluster: where its repository is (in the DR stack, the DR one). */
export const restoreClusterSchema = z.object({ name: z.string(), repository: z.string() });
export const restoreClustersSchema = z.array(restoreClusterSchema);
export type RestoreCluster = z.infer<typeof restoreClusterSchema>;

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
  outcome: { succeeded: string; failed: string; rto: string; completedEvent: string };
  /** Where recovery stops, in words. */
  recoveryTarget: string;
}

export const restoreMetrics = {
  restoreSucceeded: 'RestoreSucceeded',
  restoreFailed: 'RestoreFailed',
  drillSucceeded: 'DrillSucceeded',
  drillFailed: 'DrillFailed',
  /** Seconds from the request to the restored server accepting connections, per successful restore or drill. */
  restoreRtoSeconds: 'RestoreRtoSeconds',
  drillRtoSeconds: 'DrillRtoSeconds',
} as const;

export const restoreEvents = {
  completed: 'pgsnap restore completed',
  failed: 'pgsnap restore failed',
  drillCompleted: 'pgsnap drill completed',
} as const;

export const prepareRestoreEventSchema = z.object({
  input: z.unknown(),
  executionName: z.string(),
  executionStartTime: z.iso.datetime({ offset: true }),
});

/** The first step: the request checked against the backup and the repository, then recorded as `requested`. */
export async function prepareRestore(
  open: (url: string, cluster: string) => Promise<Repository>,
  event: z.infer<typeof prepareRestoreEventSchema>,
  clusters: RestoreCluster[],
): Promise<RestorePlan> {
  const request = parseWith(restoreRequestSchema, event.input, 'the restore request');
  const cluster = clusters.find((c) => c.name === request.cluster);
  if (!cluster) {
    throw new InvalidInputError(
      `the restore request is not valid: cluster: ${request.cluster} is not configured here ` +
        `(configured: ${clusters.map((c) => c.name).join(', ') || 'none'})`,
    );
  }
  const restoreId = restoreIdOfExecution(
    { name: event.executionName, startTime: new Date(event.executionStartTime) },
    request.restoreId,
  );
  const repository = await open(cluster.repository, cluster.name);
  try {
    const existing = await repository.readRestoreRecord(restoreId);
    if (existing?.state === 'failed') throw refusedAgain(existing);
    // A retried first step finds its own record: the checks passed already.
    let record = existing;
    if (!record) {
      const now = new Date();
      try {
        record = await planRestore(
          repository,
          { ...request, restoreId, repository: cluster.repository },
          now,
        );
      } catch (error) {
        // Refused before anything was made: the record says why, and the restore ends here.
        await repository.writeRestoreRecord(
          refusedRecord(request, restoreId, cluster.repository, error, now),
        );
        throw error;
      }
      await repository.writeRestoreRecord(record);
    }
    const drill = record.mode === 'drill';
    return {
      restoreId,
      cluster: cluster.name,
      backupId: record.backupId!,
      repository: cluster.repository,
      mode: record.mode,
      instance: request.instance,
      volumeOptions: {
        ...(request.initializationRate ? { initializationRate: request.initializationRate } : {}),
        ...(request.kmsKeyId ? { kmsKeyId: request.kmsKeyId } : {}),
      },
      outcome: {
        succeeded: drill ? restoreMetrics.drillSucceeded : restoreMetrics.restoreSucceeded,
        failed: drill ? restoreMetrics.drillFailed : restoreMetrics.restoreFailed,
        rto: drill ? restoreMetrics.drillRtoSeconds : restoreMetrics.restoreRtoSeconds,
        completedEvent: drill ? restoreEvents.drillCompleted : restoreEvents.completed,
      },
      recoveryTarget: describeTarget(record.target),
    };
  } finally {
    repository.close();
  }
}

function refusedRecord(
  request: RestoreRequest,
  restoreId: string,
  repository: string,
  error: unknown,
  now: Date,
): RestoreRecord {
  const at = now.toISOString();
  return {
    schemaVersion: restoreRecordSchemaVersion,
    restoreId,
    cluster: request.cluster,
    ...(request.backupId !== 'latest' ? { backupId: request.backupId } : {}),
    mode: request.mode,
    state: 'failed',
    ...(request.target ? { target: request.target } : {}),
    checks: request.checks,
    repository,
    volumes: [],
    timings: { requestedAt: at, finishedAt: at },
    failure: {
      error: (error as Error).name ?? 'Error',
      reason: (error as Error).message ?? String(error),
      at,
    },
    updatedAt: at,
  };
}

function refusedAgain(record: RestoreRecord): Error {
  const error = new Error(record.failure?.reason ?? `restore ${record.restoreId} failed`);
  error.name = record.failure?.error ?? 'Error';
  return error;
}

/** A change to the restore record, one per phase. */
export const recordUpdateSchema = z.discriminatedUnion('phase', [
  z.object({
    phase: z.literal('instance'),
    instance: z.object({ instanceId: z.string(), availabilityZone: z.string(), launched: z.boolean() }),
  }),
  z.object({ phase: z.literal('available') }),
  z.object({ phase: z.literal('attached') }),
  z.object({ phase: z.literal('running'), host: hostReportSchema }),
  z.object({
    phase: z.literal('completed'),
    cleanup: z.optional(
      z.object({ deleted: z.optional(z.array(z.string())), terminated: z.optional(z.array(z.string())) }),
    ),
  }),
  z.object({
    phase: z.literal('failed'),
    error: z.object({ Error: z.string(), Cause: z.optional(z.string()) }),
    cleanup: z.optional(
      z.object({ deleted: z.optional(z.array(z.string())), terminated: z.optional(z.array(z.string())) }),
    ),
  }),
]);
export type RecordUpdate = z.infer<typeof recordUpdateSchema>;

/**
 * The cause Step Functions gives a caught error: the message alone, or (a
 * Lambda's error) the whole JSON payload, of which the message is the reason.
 */
export function reasonOf(error: { Error: string; Cause?: string | undefined }): string {
  const cause = error.Cause ?? 'no cause given';
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: unknown };
    if (typeof parsed.errorMessage === 'string') return parsed.errorMessage;
  } catch {
    // Not JSON: the cause is the message.
  }
  return cause;
}

/** The record after `update`; pure, so the e2e tests and the Lambda agree on what each phase writes. */
export function applyUpdate(record: RestoreRecord, update: RecordUpdate, now = new Date()): RestoreRecord {
  const at = now.toISOString();
  const next: RestoreRecord = { ...record, updatedAt: at, timings: { ...record.timings } };
  switch (update.phase) {
    case 'instance':
      next.instance = update.instance;
      next.timings.instanceReadyAt = at;
      return next;
    case 'available':
      next.timings.volumesAvailableAt = at;
      return next;
    case 'attached':
      next.state = 'attached';
      next.timings.attachedAt = at;
      return next;
    case 'running': {
      const host: HostReport = update.host;
      next.state = 'running';
      next.host = host;
      if (host.timings.acceptingAt) {
        next.timings.acceptingAt = host.timings.acceptingAt;
        next.rtoSeconds = Math.max(
          0,
          (Date.parse(host.timings.acceptingAt) - Date.parse(record.timings.requestedAt)) / 1000,
        );
      }
      next.dataKept = {
        ...(host.lastReplayedCommit ? { lastReplayedCommit: host.lastReplayedCommit } : {}),
        ...(host.replayLsn ? { replayLsn: host.replayLsn } : {}),
        target: describeTarget(record.target),
      };
      return next;
    }
    case 'completed':
      next.state = 'completed';
      next.timings.finishedAt = at;
      next.cleanup = {
        volumesDeleted: update.cleanup?.deleted ?? [],
        ...(update.cleanup?.terminated?.[0] ? { instanceTerminated: update.cleanup.terminated[0] } : {}),
        unmounted: true,
      };
      return next;
    case 'failed':
      next.state = 'failed';
      next.timings.finishedAt = at;
      next.failure = { error: update.error.Error, reason: reasonOf(update.error), at };
      next.cleanup = {
        volumesDeleted: update.cleanup?.deleted ?? [],
        ...(update.cleanup?.terminated?.[0] ? { instanceTerminated: update.cleanup.terminated[0] } : {}),
      };
      return next;
  }
}

/** The checks that failed, in words; empty when the host's report passed. */
export function failedChecks(host: HostReport): string[] {
  return Object.entries(host.checks)
    .filter(([, outcome]) => outcome && !outcome.ok)
    .map(([name, outcome]) => `${name}: ${outcome!.detail}`);
}

/** Records `update`; the host's report with a failed check is recorded, then fails the restore. */
export async function recordRestore(
  repository: Repository,
  restoreId: string,
  update: RecordUpdate,
): Promise<{ state: string; rtoSeconds?: number }> {
  const record = await repository.readRestoreRecord(restoreId);
  if (!record) {
    throw new InvalidInputError(
      `restore ${restoreId} has no record in ${repository.url}; it was never prepared`,
    );
  }
  const next = applyUpdate(record, update);
  await repository.writeRestoreRecord(next);
  if (update.phase === 'running') {
    const failed = failedChecks(update.host);
    if (failed.length > 0 || !update.host.ok) {
      throw new RestoreCheckFailedError(
        `the restored cluster ${record.cluster} (backup ${record.backupId}) failed its checks: ${failed.join('; ') || 'the host reported a failure'}`,
      );
    }
  }
  return { state: next.state, ...(next.rtoSeconds !== undefined ? { rtoSeconds: next.rtoSeconds } : {}) };
}

/**
 * The volumes of the record, with the ids the create step got back (and the
 * devices the attach step got). Returns the record's digest (recordDigest):
 * after the attach step, the layout the target host acts on is final, and the
 * state machine hands this digest to the host, which refuses any other record.
 */
export async function recordVolumes(
  repository: Repository,
  restoreId: string,
  volumes: RestoreVolume[],
  state: 'volumes' | 'attached',
): Promise<string> {
  const record = (await repository.readRestoreRecord(restoreId))!;
  const at = new Date().toISOString();
  const next: RestoreRecord = {
    ...record,
    volumes,
    state: state === 'volumes' ? 'volumes' : record.state,
    timings: { ...record.timings, ...(state === 'volumes' ? { volumesCreatedAt: at } : {}) },
    updatedAt: at,
  };
  await repository.writeRestoreRecord(next);
  // Digested as the host will read it: parsed by the record's schema.
  return recordDigest(validateRestoreRecord(next, `restore ${restoreId}`));
}
