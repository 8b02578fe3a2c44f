/**
 * The lifecycle of a restore record (`<cluster>/restores/<restoreId>.json`):
 * which phase moves it to which state, and which of its timings each phase
 * stamps. The restore Lambdas change a record only through `applyUpdate`,
 * `recordRestore` and `recordVolumes`, which read this table; the first step
 * (steps.ts) writes it `requested`, or `failed` when the request is refused.
 *
 *     (none) ─prepare→ requested ─volumesCreated→ volumes ─attached→ attached ─running→ running ─completed→ completed
 *     (none) ─refused→ failed;  any state ─failed→ failed (after the cleanup, with the reason)
 *     instance, available, volumesAttached and initialization amend the record and keep its state.
 *
 * A restore or a standby ends `running`; a drill, torn down, `completed`.
 */
import { InvalidInputError, RestoreCheckFailedError } from '../errors.ts';
import { type HostReport, hostReportSchema } from '../repository/host-report.ts';
import type { Repository } from '../repository/repository.ts';
import {
  type RestoreRecord,
  type RestoreState,
  type RestoreVolume,
  recordDigest,
  validateRestoreRecord,
} from '../repository/restore-record.ts';
import * as z from '../zod.ts';
import { describeTarget } from './plan.ts';

type Timing = Exclude<keyof RestoreRecord['timings'], 'requestedAt'>;

export interface RestorePhaseRule {
  /** The state the phase leaves the record in; `same`: it amends the record and keeps its state. */
  to: RestoreState | 'same';
  /** The timing it stamps with the time it is recorded. */
  stamps?: Timing;
}

export type RestorePhase = RecordUpdate['phase'] | 'volumesCreated' | 'volumesAttached';

/** Every phase after the first step, what state it moves the record to and what time it stamps. */
export const restoreLifecycle: Readonly<Record<RestorePhase, RestorePhaseRule>> = {
  instance: { to: 'same', stamps: 'instanceReadyAt' },
  volumesCreated: { to: 'volumes', stamps: 'volumesCreatedAt' },
  available: { to: 'same', stamps: 'volumesAvailableAt' },
  // The devices the volumes were attached as, before the attach is confirmed.
  volumesAttached: { to: 'same' },
  attached: { to: 'attached', stamps: 'attachedAt' },
  // The time the restored server accepted connections is the host's (acceptingAt), not the record's.
  running: { to: 'running' },
  // What EBS said of the volumes' initialization once the server was open (initialization.ts).
  initialization: { to: 'same' },
  completed: { to: 'completed', stamps: 'finishedAt' },
  failed: { to: 'failed', stamps: 'finishedAt' },
};

/** The record moved by `phase` at `at`: its state, the timing the phase stamps, and updatedAt. */
function moved(record: RestoreRecord, phase: RestorePhase, at: string): RestoreRecord {
  const rule = restoreLifecycle[phase];
  return {
    ...record,
    ...(rule.to === 'same' ? {} : { state: rule.to }),
    updatedAt: at,
    timings: { ...record.timings, ...(rule.stamps ? { [rule.stamps]: at } : {}) },
  };
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
    phase: z.literal('initialization'),
    measured: z.object({
      at: z.iso.datetime(),
      volumes: z.number(),
      reported: z.number(),
      progress: z.optional(z.number()),
      remainingSeconds: z.optional(z.number()),
    }),
  }),
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
  const next = moved(record, update.phase, at);
  switch (update.phase) {
    case 'instance':
      next.instance = update.instance;
      return next;
    case 'available':
    case 'attached':
      return next;
    case 'running': {
      const host: HostReport = update.host;
      next.host = host;
      if (host.timings.acceptingAt) {
        next.timings.acceptingAt = host.timings.acceptingAt;
        next.rtoSeconds = Math.max(
          0,
          (Date.parse(host.timings.acceptingAt) - Date.parse(record.timings.requestedAt)) / 1000,
        );
        const fullSpeed = timeToFullSpeed(next);
        if (fullSpeed !== undefined) next.timeToFullSpeedSeconds = fullSpeed;
      }
      next.dataKept = {
        ...(host.lastReplayedCommit ? { lastReplayedCommit: host.lastReplayedCommit } : {}),
        ...(host.replayLsn ? { replayLsn: host.replayLsn } : {}),
        target: describeTarget(record.target),
      };
      return next;
    }
    case 'initialization': {
      if (!next.initialization) return next;
      next.initialization = { ...next.initialization, measured: update.measured };
      const fullSpeed = timeToFullSpeed(next);
      if (fullSpeed !== undefined) next.timeToFullSpeedSeconds = fullSpeed;
      return next;
    }
    case 'completed':
      next.cleanup = {
        volumesDeleted: update.cleanup?.deleted ?? [],
        ...(update.cleanup?.terminated?.[0] ? { instanceTerminated: update.cleanup.terminated[0] } : {}),
        unmounted: true,
      };
      return next;
    case 'failed':
      next.failure = { error: update.error.Error, reason: reasonOf(update.error), at };
      next.cleanup = {
        volumesDeleted: update.cleanup?.deleted ?? [],
        ...(update.cleanup?.terminated?.[0] ? { instanceTerminated: update.cleanup.terminated[0] } : {}),
      };
      return next;
  }
}

/**
 * Time to full speed, counted from the request and never before the server
 * opened: when EBS gave its estimate of the time left (a provisioned rate,
 * initialization.ts), the moment it said so plus that time; otherwise the
 * volumes' creation plus the model's initialization time (full-speed.ts).
 * Undefined when the record lacks either.
 */
export function timeToFullSpeed(record: RestoreRecord): number | undefined {
  const created = record.timings.volumesCreatedAt;
  if (!record.initialization || !created || record.rtoSeconds === undefined) return undefined;
  const measured = record.initialization.measured;
  const fromRequest =
    measured?.remainingSeconds !== undefined
      ? secondsBetween(record.timings.requestedAt, measured.at) + measured.remainingSeconds
      : secondsBetween(record.timings.requestedAt, created) + record.initialization.fullSpeedSeconds;
  return Math.max(record.rtoSeconds, Math.round(fromRequest));
}

/** The model's time to full speed from the request, whatever EBS measured (bench/restore and the CLI show both). */
export function modelTimeToFullSpeed(record: RestoreRecord): number | undefined {
  const created = record.timings.volumesCreatedAt;
  if (!record.initialization || !created) return undefined;
  return Math.round(
    secondsBetween(record.timings.requestedAt, created) + record.initialization.fullSpeedSeconds,
  );
}

function secondsBetween(from: string, to: string): number {
  return (Date.parse(to) - Date.parse(from)) / 1000;
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
): Promise<{ state: string; rtoSeconds?: number; timeToFullSpeedSeconds?: number }> {
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
  return {
    state: next.state,
    ...(next.rtoSeconds !== undefined ? { rtoSeconds: next.rtoSeconds } : {}),
    ...(next.timeToFullSpeedSeconds !== undefined
      ? { timeToFullSpeedSeconds: next.timeToFullSpeedSeconds }
      : {}),
  };
}

/**
 * The volumes of the record, with the ids the create step got back (`volumes`) or their devices
 * (`attached`). Returns the record's digest (recordDigest): after the attach step, the layout the target
 * host acts on is final, and the state machine hands this digest to the host, which refuses any other record.
 */
export async function recordVolumes(
  repository: Repository,
  restoreId: string,
  volumes: RestoreVolume[],
  state: 'volumes' | 'attached',
): Promise<string> {
  const record = (await repository.readRestoreRecord(restoreId))!;
  const phase = state === 'volumes' ? 'volumesCreated' : 'volumesAttached';
  const next = { ...moved(record, phase, new Date().toISOString()), volumes };
  await repository.writeRestoreRecord(next);
  // Digested as the host will read it: parsed by the record's schema.
  return recordDigest(validateRestoreRecord(next, `restore ${restoreId}`));
}
