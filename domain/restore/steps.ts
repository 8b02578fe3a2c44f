/**
 * The restore state machine's first step: the request checked against the
 * backup and the repository, then recorded (`requested`, or `failed` when it
 * is refused). It returns the RestorePlan (plan.ts) every later step reads;
 * the record's later phases are in lifecycle.ts.
 */
import { type Catalog, describeConfigured, restoreClusterOf } from '../catalog.ts';
import { InvalidInputError } from '../errors.ts';
import { parseWith } from '../parse.ts';
import type { Repository } from '../repository/repository.ts';
import { type RestoreRecord, restoreRecordSchemaVersion } from '../repository/restore-record.ts';
import * as z from '../zod.ts';
import { hostTime } from './host-time.ts';
import { describeTarget, planRestore, type RestorePlan } from './plan.ts';
import { type RestoreRequest, restoreIdOfExecution, restoreRequestSchema } from './request.ts';

export const restoreMetrics = {
  restoreSucceeded: 'RestoreSucceeded',
  restoreFailed: 'RestoreFailed',
  drillSucceeded: 'DrillSucceeded',
  drillFailed: 'DrillFailed',
  /** Seconds from the request to the restored server accepting connections, per successful restore or drill. */
  restoreRtoSeconds: 'RestoreRtoSeconds',
  drillRtoSeconds: 'DrillRtoSeconds',
  /** Seconds from the request until every restored volume is initialized (an estimate without a provisioned rate). */
  restoreTimeToFullSpeedSeconds: 'RestoreTimeToFullSpeedSeconds',
  drillTimeToFullSpeedSeconds: 'DrillTimeToFullSpeedSeconds',
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
  catalog: Catalog,
): Promise<RestorePlan> {
  const request = parseWith(restoreRequestSchema, event.input, 'the restore request');
  const cluster = restoreClusterOf(catalog, request.cluster);
  if (!cluster) {
    throw new InvalidInputError(
      `the restore request is not valid: cluster: ${request.cluster} is not configured here ` +
        `(${describeConfigured(catalog)})`,
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
        // The rate asked for, or the one chosen for a full-speed objective (planInitialization).
        ...(record.initialization?.basis === 'provisioned'
          ? { initializationRate: record.initialization.rateMiBps }
          : {}),
        ...(request.kmsKeyId ? { kmsKeyId: request.kmsKeyId } : {}),
      },
      outcome: {
        succeeded: drill ? restoreMetrics.drillSucceeded : restoreMetrics.restoreSucceeded,
        failed: drill ? restoreMetrics.drillFailed : restoreMetrics.restoreFailed,
        rto: drill ? restoreMetrics.drillRtoSeconds : restoreMetrics.restoreRtoSeconds,
        fullSpeed: drill
          ? restoreMetrics.drillTimeToFullSpeedSeconds
          : restoreMetrics.restoreTimeToFullSpeedSeconds,
        completedEvent: drill ? restoreEvents.drillCompleted : restoreEvents.completed,
      },
      recoveryTarget: describeTarget(record.target),
      hostTime: hostTime({
        recoverySeconds: cluster.recoverySeconds,
        dataBytes: record.volumes.reduce((sum, v) => sum + v.source.sizeGiB * 2 ** 30, 0),
        amcheck: record.checks.amcheck !== 'none',
        initializationRate:
          record.initialization?.basis === 'provisioned' ? record.initialization.rateMiBps : undefined,
      }),
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
