/**
 * The restorable window of a repository, as pgBackRest's `info` gives it:
 * the earliest point a restore can reach (the stop of the oldest completed
 * backup: before it, no backup is consistent) and the latest (the end of the
 * WAL archived without a gap after the newest completed backup), with every
 * gap in the archived WAL named. A gap cuts the window: a restore from a
 * backup before it stops at the gap, and only a backup taken after it reaches
 * the WAL beyond.
 */
import type { Manifest } from '../repository/manifest.ts';
import { parseSegmentName, segmentName } from '../wal/file.ts';
import { formatLsn } from '../wal/lsn.ts';

export interface WalGap {
  /** The first and last missing segment, on the timeline of the segment before the gap. */
  first: string;
  last: string;
  segments: number;
}

export interface RestorableWindow {
  /** The oldest completed backup's stop. */
  earliest: { backupId: string; lsn: string; at: string | undefined };
  /** The last segment reachable from the newest completed backup without a gap, and where it ends. */
  latest: { segment: string; endLsn: string };
  /** The newest segment archived, when a gap keeps it out of reach. */
  unreachable?: { segment: string; endLsn: string };
  gaps: WalGap[];
  /** Per completed backup: the last segment a restore of it reaches without a gap. */
  reachable: Record<string, string>;
}

const segmentPattern = /^[0-9A-F]{24}$/;

/** The window, or undefined when no completed backup has its WAL range recorded. */
export function restorableWindow(
  manifests: Manifest[],
  walNames: string[],
  segmentSize: number,
): RestorableWindow | undefined {
  const completed = manifests
    .filter((m) => m.state === 'completed' && m.wal && m.stopLsn)
    .sort((a, b) => a.timings.startedAt.localeCompare(b.timings.startedAt));
  const oldest = completed[0];
  if (!oldest?.wal || !oldest.stopLsn) return undefined;
  const start = parseSegmentName(oldest.wal.first, segmentSize);
  // A segment number once per timeline: after a promotion the new timeline carries on from the switch,
  // and the newest timeline's copy of a number is the one recovery follows.
  const present = new Map<bigint, number>();
  for (const name of walNames) {
    if (!segmentPattern.test(name)) continue;
    const { timeline, segno } = parseSegmentName(name, segmentSize);
    if (timeline < start.timeline || segno < start.segno) continue;
    if ((present.get(segno) ?? 0) < timeline) present.set(segno, timeline);
  }
  const numbers = [...present.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const newest = numbers.at(-1) ?? start.segno;
  const gaps: WalGap[] = [];
  let timeline = start.timeline;
  for (let segno = start.segno; segno <= newest; segno++) {
    const found = present.get(segno);
    if (found !== undefined) {
      timeline = found;
      continue;
    }
    let last = segno;
    while (last + 1n <= newest && !present.has(last + 1n)) last++;
    gaps.push({
      first: segmentName(timeline, segno, segmentSize),
      last: segmentName(timeline, last, segmentSize),
      segments: Number(last - segno + 1n),
    });
    segno = last;
  }
  const name = (segno: bigint) => segmentName(present.get(segno) ?? timeline, segno, segmentSize);
  const end = (segno: bigint) => ({
    segment: name(segno),
    endLsn: formatLsn((segno + 1n) * BigInt(segmentSize)),
  });
  /** The last segment present from `first` on without a gap (the one before `first` when it is missing). */
  const reachFrom = (first: bigint) => {
    let segno = first;
    while (present.has(segno)) segno++;
    return segno - 1n;
  };
  const reachable: Record<string, string> = {};
  for (const m of completed)
    reachable[m.backupId] = name(reachFrom(parseSegmentName(m.wal!.first, segmentSize).segno));
  const newestBackup = completed.at(-1)!;
  const latest = reachFrom(parseSegmentName(newestBackup.wal!.first, segmentSize).segno);
  return {
    earliest: { backupId: oldest.backupId, lsn: oldest.stopLsn, at: oldest.timings.stoppedAt },
    latest: end(latest),
    ...(newest > latest ? { unreachable: end(newest) } : {}),
    gaps,
    reachable,
  };
}
