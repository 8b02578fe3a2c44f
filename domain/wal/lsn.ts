/**
 * LSN and WAL file-name arithmetic, done on the client.
 *
 * pg_walfile_name() is not used: up to 16 it maps a segment-boundary LSN to the
 * previous segment and 17 does not (release-17 notes), it errors on a standby,
 * and it always uses the current timeline.
 */

import { segmentName } from './file.ts';

const lsnPattern = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** Parses PostgreSQL's `X/Y` text form into a 64-bit position. */
export function parseLsn(text: string): bigint {
  const match = lsnPattern.exec(text.trim());
  if (!match) throw new Error(`not an LSN: ${JSON.stringify(text)} (expected the form 16/B374D848)`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** XLogFileName: the segment that contains `lsn` on `timeline`. */
export function walFileName(timeline: number, lsn: bigint, segmentSize: number): string {
  return segmentName(timeline, lsn / BigInt(segmentSize), segmentSize);
}

/**
 * XLByteToPrevSeg: the segment holding the byte just before `lsn`. The stop
 * position of a backup is the end of a record, so the last segment a backup
 * needs is this one (the server waits on the same segment in pg_backup_stop).
 */
export function walFileNameBefore(timeline: number, lsn: bigint, segmentSize: number): string {
  return walFileName(timeline, lsn - 1n, segmentSize);
}

/** Name of the backup history file PostgreSQL writes at stop: `<start segment>.<offset>.backup`. */
export function backupHistoryFileName(timeline: number, startLsn: bigint, segmentSize: number): string {
  const offset = (startLsn % BigInt(segmentSize)).toString(16).toUpperCase().padStart(8, '0');
  return `${walFileName(timeline, startLsn, segmentSize)}.${offset}.backup`;
}

export interface BackupLabel {
  startLsn: bigint;
  startWalFile: string;
  checkpointLsn: bigint;
  backupFrom: 'primary' | 'standby';
  startTime: string;
  label: string;
  startTimeline: number;
  stopLsn?: bigint;
  stopWalFile?: string;
  stopTimeline?: number;
}

/**
 * Reads backup_label or a backup history file (same format, the history file
 * adds STOP lines). Only what pgsnap needs; the text itself is always kept
 * byte for byte.
 */
export function parseBackupLabel(text: string): BackupLabel {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(': ');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 2));
  }
  const location = (key: string): { lsn: bigint; file: string } | undefined => {
    const value = fields.get(key);
    if (value === undefined) return undefined;
    const match = /^(\S+) \(file ([0-9A-F]{24})\)$/.exec(value);
    if (!match) throw new Error(`backup label line ${key} is malformed: ${JSON.stringify(value)}`);
    return { lsn: parseLsn(match[1]!), file: match[2]! };
  };
  const start = location('START WAL LOCATION');
  const checkpoint = fields.get('CHECKPOINT LOCATION');
  if (!start || !checkpoint) throw new Error('backup label has no START WAL LOCATION or CHECKPOINT LOCATION');
  const stop = location('STOP WAL LOCATION');
  const from = fields.get('BACKUP FROM');
  const startTimeline = Number(fields.get('START TIMELINE') ?? Number.parseInt(start.file.slice(0, 8), 16));
  const stopTimeline = fields.get('STOP TIMELINE');
  return {
    startLsn: start.lsn,
    startWalFile: start.file,
    checkpointLsn: parseLsn(checkpoint),
    backupFrom: from === 'standby' ? 'standby' : 'primary',
    startTime: fields.get('START TIME') ?? '',
    label: fields.get('LABEL') ?? '',
    startTimeline,
    ...(stop ? { stopLsn: stop.lsn, stopWalFile: stop.file } : {}),
    ...(stopTimeline ? { stopTimeline: Number(stopTimeline) } : {}),
  };
}
