import { describe, expect, it } from 'vitest';
import {
  checkSegment,
  checkTimelineHistory,
  nextSegmentName,
  readSegmentHeader,
  segmentRange,
  walFileKind,
} from '#domain/wal/file';

const mb16 = 16 * 1024 * 1024;

/** The first page of a segment as a server writes it (XLogLongPageHeaderData). */
function segment(timeline: number, segno: bigint, sysid = 7710631090410220509n, size = mb16): Buffer {
  const content = Buffer.alloc(size);
  content.writeUInt16LE(0xd110, 0);
  content.writeUInt16LE(0x0006, 2);
  content.writeUInt32LE(timeline, 4);
  content.writeBigUInt64LE(segno * BigInt(size), 8);
  content.writeBigUInt64LE(sysid, 24);
  content.writeUInt32LE(size, 32);
  content.writeUInt32LE(8192, 36);
  return content;
}

describe('WAL file names', () => {
  it('tells segments, partial segments, timeline and backup history files apart', () => {
    expect(walFileKind('000000010000000000000001')).toBe('segment');
    expect(walFileKind('000000010000000000000001.partial')).toBe('partial');
    expect(walFileKind('00000002.history')).toBe('history');
    expect(walFileKind('000000010000000000000002.00000028.backup')).toBe('backup');
    expect(walFileKind('../../etc/passwd')).toBeUndefined();
    expect(walFileKind('RECOVERYXLOG')).toBeUndefined();
  });

  it('steps to the next segment across the 4 GB boundary of the name', () => {
    expect(nextSegmentName('0000000100000000000000FF', mb16)).toBe('000000010000000100000000');
    expect(nextSegmentName('000000030000001600000005', mb16, 3)).toBe('000000030000001600000008');
    expect(nextSegmentName('000000010000000000000003', 64 * mb16)).toBe('000000010000000100000000');
  });

  it('lists the segments from start to stop inclusive', () => {
    expect(segmentRange('0000000100000000000000FE', '000000010000000100000001', mb16)).toEqual([
      '0000000100000000000000FE',
      '0000000100000000000000FF',
      '000000010000000100000000',
      '000000010000000100000001',
    ]);
  });
});

describe('segment headers', () => {
  it('reads the system identifier and segment size from the first page', () => {
    const header = readSegmentHeader(segment(1, 5n));
    expect(header).toEqual({
      timeline: 1,
      pageAddress: 5n * BigInt(mb16),
      systemIdentifier: '7710631090410220509',
      segmentSize: mb16,
      blockSize: 8192,
    });
  });

  it('accepts a segment that is what its name says', () => {
    expect(checkSegment('000000010000000000000005', segment(1, 5n), 'segment').systemIdentifier).toBe(
      '7710631090410220509',
    );
    // The first segment of timeline 2 starts as a copy of timeline 1's segment.
    expect(() => checkSegment('000000020000000000000005', segment(1, 5n), 'segment')).not.toThrow();
  });

  it('refuses a renamed, truncated or foreign file', () => {
    expect(() => checkSegment('000000010000000000000006', segment(1, 5n), 'segment')).toThrow(
      /holds segment 000000010000000000000005/,
    );
    expect(() =>
      checkSegment('000000010000000000000005', segment(1, 5n).subarray(0, 8192), 'segment'),
    ).toThrow(/truncated/);
    expect(() => checkSegment('000000010000000000000005', Buffer.alloc(mb16), 'segment')).toThrow(
      /not a WAL segment/,
    );
    // A partial segment is shorter by nature.
    expect(() =>
      checkSegment('000000010000000000000005.partial', segment(1, 5n).subarray(0, 8192), 'partial'),
    ).not.toThrow();
  });
});

describe('a timeline history file', () => {
  const real = '1\t0/3000158\tno recovery target specified\n\n2\t0/5000000\tat restore point "before"\n';

  it('is taken as PostgreSQL writes it, comments and blank lines aside', () => {
    expect(() => checkTimelineHistory('00000003.history', Buffer.from(real))).not.toThrow();
    expect(() =>
      checkTimelineHistory('00000002.history', Buffer.from('# a comment\n1\tFF/0000A8\t\n')),
    ).not.toThrow();
  });

  it('is refused when it is not one, saying why', () => {
    const cases: Array<[string, string | Buffer, RegExp]> = [
      ['00000003.history', 'garbage\n', /line 1 is not "<timeline>\\t<LSN>\\t<reason>"/],
      ['00000003.history', '', /no timeline switch/],
      ['00000002.history', real, /names timeline 2, not one between 1 and 2/],
      ['00000003.history', '2\t0/1\tx\n1\t0/2\tx\n', /line 2 names timeline 1/],
      ['00000002.history', Buffer.from([0x31, 0x09, 0x30, 0x2f, 0x31, 0x00, 0xff]), /not text/],
    ];
    for (const [name, content, why] of cases) {
      expect(() => checkTimelineHistory(name, Buffer.from(content))).toThrow(why);
      expect(() => checkTimelineHistory(name, Buffer.from(content))).toThrow(/the real one still can be/);
    }
  });
});
