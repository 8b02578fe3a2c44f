/**
 * What the archiver hands over: WAL segment files, timeline history files,
 * backup history files and the partial segment a promoted standby leaves,
 * recognised by name and, for segments, by their first page header.
 */
import { UsageError } from '../errors.ts';

export type WalFileKind = 'segment' | 'partial' | 'history' | 'backup';

const patterns: Array<[WalFileKind, RegExp]> = [
  ['segment', /^[0-9A-F]{24}$/],
  ['partial', /^[0-9A-F]{24}\.partial$/],
  ['history', /^[0-9A-F]{8}\.history$/],
  ['backup', /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/],
];

/** The kind of a file PostgreSQL archives or asks for, or undefined for any other name. */
export function walFileKind(name: string): WalFileKind | undefined {
  return patterns.find(([, pattern]) => pattern.test(name))?.[0];
}

/** Refuses names that are not WAL files: they would escape the repository layout. */
export function requireWalFileName(name: string): WalFileKind {
  const kind = walFileKind(name);
  if (!kind) {
    throw new UsageError(
      `${JSON.stringify(name)} is not a WAL file name (expected a segment such as 000000010000000000000001, ` +
        'a timeline history file 00000002.history, or a backup history file 000000010000000000000002.00000028.backup)',
    );
  }
  return kind;
}

export interface SegmentName {
  timeline: number;
  /** The segment number, counted from the start of WAL. */
  segno: bigint;
}

export function parseSegmentName(name: string, segmentSize: number): SegmentName {
  const segmentsPerId = 0x1_0000_0000n / BigInt(segmentSize);
  return {
    timeline: Number.parseInt(name.slice(0, 8), 16),
    segno: BigInt(`0x${name.slice(8, 16)}`) * segmentsPerId + BigInt(`0x${name.slice(16, 24)}`),
  };
}

function hex8(value: bigint | number): string {
  return value.toString(16).toUpperCase().padStart(8, '0');
}

export function segmentName(timeline: number, segno: bigint, segmentSize: number): string {
  const segmentsPerId = 0x1_0000_0000n / BigInt(segmentSize);
  return `${hex8(timeline)}${hex8(segno / segmentsPerId)}${hex8(segno % segmentsPerId)}`;
}

/** The segment after `name` on the same timeline (XLogFileName of segno + 1). */
export function nextSegmentName(name: string, segmentSize: number, step = 1): string {
  const { timeline, segno } = parseSegmentName(name, segmentSize);
  return segmentName(timeline, segno + BigInt(step), segmentSize);
}

/** Segments from `first` to `last` inclusive, on the timeline of `first`. */
export function segmentRange(first: string, last: string, segmentSize: number): string[] {
  const from = parseSegmentName(first, segmentSize);
  const to = parseSegmentName(last, segmentSize);
  const names: string[] = [];
  for (let segno = from.segno; segno <= to.segno; segno++) {
    names.push(segmentName(from.timeline, segno, segmentSize));
  }
  return names;
}

export interface SegmentHeader {
  timeline: number;
  pageAddress: bigint;
  systemIdentifier: string;
  segmentSize: number;
  blockSize: number;
}

/** XLP_LONG_HEADER in xlp_info: the first page of every segment carries the long header. */
const longHeaderFlag = 0x0002;

/**
 * Reads XLogLongPageHeaderData from the first page of a segment
 * (access/xlog_internal.h): xlp_magic u16, xlp_info u16, xlp_tli u32,
 * xlp_pageaddr u64, xlp_rem_len u32, padded to 24 bytes; then xlp_sysid u64,
 * xlp_seg_size u32, xlp_xlog_blcksz u32. The layout has not changed since 9.x.
 */
export function readSegmentHeader(content: Buffer): SegmentHeader | undefined {
  if (content.length < 40) return undefined;
  if ((content.readUInt16LE(2) & longHeaderFlag) === 0) return undefined;
  return {
    timeline: content.readUInt32LE(4),
    pageAddress: content.readBigUInt64LE(8),
    systemIdentifier: content.readBigUInt64LE(24).toString(),
    segmentSize: content.readUInt32LE(32),
    blockSize: content.readUInt32LE(36),
  };
}

/**
 * Checks that a segment is what its name says: a long page header from a
 * server, the right length, and the timeline and position of its name. A file
 * that fails this is not pushed: it would be restored as something it is not.
 */
export function checkSegment(name: string, content: Buffer, kind: 'segment' | 'partial'): SegmentHeader {
  const header = readSegmentHeader(content);
  if (!header || header.segmentSize < 1 << 20 || (header.segmentSize & (header.segmentSize - 1)) !== 0) {
    throw new Error(`${name} does not start with a WAL segment header; it is not a WAL segment`);
  }
  if (kind === 'segment' && content.length !== header.segmentSize) {
    throw new Error(
      `${name} is ${content.length} bytes but its header says segments are ${header.segmentSize} bytes; ` +
        'the file is truncated or not a WAL segment',
    );
  }
  const expected = parseSegmentName(name.slice(0, 24), header.segmentSize);
  const segno = header.pageAddress / BigInt(header.segmentSize);
  // The first segment of a new timeline starts as a copy of the old timeline's segment (XLogFileCopy at the
  // end of recovery), so its first page may carry an older timeline; never a newer one.
  if (header.timeline > expected.timeline || segno !== expected.segno) {
    throw new Error(
      `${name} holds segment ${segmentName(header.timeline, segno, header.segmentSize)} ` +
        '(by its page header); it was renamed or copied over another segment',
    );
  }
  return header;
}

/**
 * Checks that a timeline history file is one (timeline.c, readTimeLineHistory): each line `<parent
 * timeline>\t<switch LSN>\t<reason>`, the parents increasing and below the file's own timeline, comments
 * (`#`) and blank lines aside. PostgreSQL archives a history file once and never rewrites it, and the
 * repository keeps the first content it is given: garbage stored under the name would stand in for the real
 * file for good, so it is refused and the archiver asks again with the real one.
 */
export function checkTimelineHistory(name: string, content: Buffer): void {
  const timeline = Number.parseInt(name.slice(0, 8), 16);
  const refuse = (why: string) =>
    new Error(`${name} is not a timeline history file (${why}); not archived, so the real one still can be`);
  const text = content.toString('utf8');
  if (text.includes('\0') || !Buffer.from(text, 'utf8').equals(content)) throw refuse('not text');
  let previous = 0;
  let entries = 0;
  for (const [index, line] of text.split('\n').entries()) {
    if (/^\s*(#.*)?$/.test(line)) continue;
    const fields = /^\s*(\d+)\t([0-9A-F]{1,8})\/([0-9A-F]{1,8})(\t.*)?$/i.exec(line);
    if (!fields)
      throw refuse(
        `line ${index + 1} is not "<timeline>\\t<LSN>\\t<reason>": ${JSON.stringify(line.slice(0, 80))}`,
      );
    const parent = Number(fields[1]);
    if (parent <= previous || parent >= timeline) {
      throw refuse(`line ${index + 1} names timeline ${parent}, not one between ${previous} and ${timeline}`);
    }
    previous = parent;
    entries += 1;
  }
  if (entries === 0) throw refuse('no timeline switch in it');
}

/**
 * The WAL files a backup needs in the repository to be restored: every segment from its start to its
 * stop on one timeline; across a timeline switch, the start and stop segments and the new timeline's history.
 */
export function walOfBackup(
  start: { startWalFile: string; timeline: number },
  stop: { stopWalFile: string; stopTimeline: number },
  segmentSize: number,
): string[] {
  return stop.stopTimeline === start.timeline
    ? segmentRange(start.startWalFile, stop.stopWalFile, segmentSize)
    : [
        start.startWalFile,
        stop.stopWalFile,
        `${stop.stopTimeline.toString(16).toUpperCase().padStart(8, '0')}.history`,
      ];
}
