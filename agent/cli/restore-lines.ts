/** A restore record as lines for a person: what was restored, how long each phase took, what the checks said. */

import type { RestoreRecord } from '#domain/repository/restore-record';
import { initializationPriceSource } from '#domain/restore/full-speed';
import { modelTimeToFullSpeed } from '#domain/restore/lifecycle';
import { describeTarget } from '#domain/restore/plan';
import { table } from './output.ts';

const phases: Array<[keyof RestoreRecord['timings'], string]> = [
  ['instanceReadyAt', 'instance ready'],
  ['volumesCreatedAt', 'volumes created'],
  ['volumesAvailableAt', 'volumes available'],
  ['attachedAt', 'volumes attached'],
  ['acceptingAt', 'accepting connections'],
  ['finishedAt', 'finished'],
];

function since(record: RestoreRecord, at: string | undefined): string | undefined {
  if (!at) return undefined;
  return `${at} (+${Math.round((Date.parse(at) - Date.parse(record.timings.requestedAt)) / 1000)}s)`;
}

/** The time to full speed, saying whose figure it is: EBS's (a provisioned rate, measured) or the model's. */
function fullSpeedLine(record: RestoreRecord): string | undefined {
  if (record.timeToFullSpeedSeconds === undefined) return undefined;
  const seconds = `${record.timeToFullSpeedSeconds.toFixed(0)} s`;
  const model = modelTimeToFullSpeed(record);
  if (record.initialization?.measured?.remainingSeconds !== undefined) {
    return `${seconds} (EBS's estimate once open; the model said ${model ?? '?'} s)`;
  }
  return `${seconds} (${record.initialization?.basis === 'estimate' ? 'estimate' : 'model'})`;
}

/** What DescribeVolumeStatus said of the volumes once the server was open. */
function measuredLine(record: RestoreRecord): string | undefined {
  const measured = record.initialization?.measured;
  if (!measured) return undefined;
  if (measured.progress === undefined) {
    return `${since(record, measured.at)}: EBS gave initialization details for ${measured.reported} of ${measured.volumes} volumes (they can take 5 minutes to appear)`;
  }
  const left =
    measured.remainingSeconds !== undefined ? `, ${measured.remainingSeconds} s left by EBS's estimate` : '';
  return `${since(record, measured.at)}: ${measured.progress}% initialized${left}`;
}

/** How the volumes initialized and, at a provisioned rate, what it is billed (priced when a price is given). */
function initializationLine(record: RestoreRecord, pricePerGiB?: number): string | undefined {
  const init = record.initialization;
  if (!init) return undefined;
  if (init.basis !== 'provisioned') return `EBS's default rate (estimated at ${init.rateMiBps} MiB/s)`;
  const objective = init.objectiveMinutes ? ` (for full speed within ${init.objectiveMinutes} min)` : '';
  const billed =
    pricePerGiB !== undefined && init.billedGiB !== undefined
      ? `${init.billedGiB} GiB billed: $${(Math.round(init.billedGiB * pricePerGiB * 100) / 100).toFixed(2)} at $${pricePerGiB}/GiB`
      : `${init.billedGiB} GiB billed (${initializationPriceSource})`;
  return `provisioned ${init.rateMiBps} MiB/s${objective}, ${billed}`;
}

export function recordLines(record: RestoreRecord, options: { pricePerGiB?: number } = {}): string[] {
  const host = record.host;
  return [
    ...table([
      ['restoreId', record.restoreId],
      ['backupId', record.backupId],
      ['mode', record.mode],
      ['state', record.state],
      ['target', describeTarget(record.target)],
      [
        'instance',
        record.instance
          ? `${record.instance.instanceId}${record.instance.launched ? ' (launched)' : ''}`
          : undefined,
      ],
      ['failure', record.failure ? `${record.failure.error}: ${record.failure.reason}` : undefined],
      ['requested', record.timings.requestedAt],
      ...phases.map(([key, name]): [string, unknown] => [name, since(record, record.timings[key])]),
      ['host mounted', host ? since(record, host.timings.mountedAt) : undefined],
      ['host started', host ? since(record, host.timings.startedAt) : undefined],
      ['host consistent', host ? since(record, host.timings.consistentAt) : undefined],
      ['target reached', host ? since(record, host.timings.targetReachedAt) : undefined],
      ['RTO', record.rtoSeconds !== undefined ? `${record.rtoSeconds.toFixed(1)} s to open` : undefined],
      ['time to full speed', fullSpeedLine(record)],
      ['initialization measured', measuredLine(record)],
      ['initialization', initializationLine(record, options.pricePerGiB)],
      ['last replayed commit', record.dataKept?.lastReplayedCommit],
      [
        'volumes',
        record.volumes
          .map((v) => `${v.volumeId ?? '(not made)'} from ${v.snapshotId} at ${v.source.mountPoint}`)
          .join('; ') || undefined,
      ],
      [
        'cleanup',
        record.cleanup
          ? `deleted ${record.cleanup.volumesDeleted.join(', ') || 'no volume'}${record.cleanup.instanceTerminated ? `, terminated ${record.cleanup.instanceTerminated}` : ''}`
          : undefined,
      ],
    ]),
    ...(host
      ? Object.entries(host.checks)
          .filter(([, outcome]) => outcome)
          .map(([name, outcome]) => `check ${name}: ${outcome!.ok ? 'ok' : 'FAILED'}: ${outcome!.detail}`)
      : []),
  ];
}
