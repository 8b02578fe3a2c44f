import { describe, expect, test } from 'vitest';
import { restorableWindow } from '../../domain/backup/restorable-window.ts';
import { testManifest } from '../support/manifests.ts';

const mib16 = 16 * 1024 * 1024;
const seg = (timeline: number, n: number) =>
  `${timeline.toString(16).padStart(8, '0')}00000000${n.toString(16).toUpperCase().padStart(8, '0')}`;

function backup(backupId: string, first: number, last: number, state: 'completed' | 'failed' = 'completed') {
  return testManifest({
    backupId,
    state,
    walSegmentSize: mib16,
    timeline: 1,
    stopLsn: `0/${(last * mib16 + 0x100).toString(16).toUpperCase()}`,
    wal: { first: seg(1, first), last: seg(1, last) },
    timings: { startedAt: `2026-01-0${first}T00:00:00.000Z`, stoppedAt: `2026-01-0${first}T00:01:00.000Z` },
  });
}

describe('the restorable window', () => {
  test('from the oldest completed backup stop to the end of the WAL archived after it', () => {
    const wal = [2, 3, 4, 5, 6].map((n) => seg(1, n)).concat(['000000010000000000000003.00000028.backup']);
    const window = restorableWindow([backup('b1', 2, 3), backup('b2', 5, 5)], wal, mib16)!;
    expect(window.earliest).toEqual({ backupId: 'b1', lsn: '0/3000100', at: '2026-01-02T00:01:00.000Z' });
    expect(window.latest).toEqual({ segment: seg(1, 6), endLsn: '0/7000000' });
    expect(window.gaps).toEqual([]);
    expect(window.reachable).toEqual({ b1: seg(1, 6), b2: seg(1, 6) });
    expect(window.unreachable).toBeUndefined();
  });

  test('a gap is named, cuts the older backups short, and WAL past it without a backup is out of reach', () => {
    const wal = [2, 3, 6, 7].map((n) => seg(1, n));
    const window = restorableWindow([backup('b1', 2, 3)], wal, mib16)!;
    expect(window.gaps).toEqual([{ first: seg(1, 4), last: seg(1, 5), segments: 2 }]);
    expect(window.reachable).toEqual({ b1: seg(1, 3) });
    expect(window.latest.segment).toBe(seg(1, 3));
    expect(window.unreachable).toEqual({ segment: seg(1, 7), endLsn: '0/8000000' });
    // A backup after the gap reaches the newest WAL again.
    const later = restorableWindow([backup('b1', 2, 3), backup('b2', 6, 6)], wal, mib16)!;
    expect(later.latest.segment).toBe(seg(1, 7));
    expect(later.unreachable).toBeUndefined();
    expect(later.reachable).toEqual({ b1: seg(1, 3), b2: seg(1, 7) });
  });

  test('the WAL goes on across a promotion on the next timeline', () => {
    const wal = [seg(1, 2), seg(1, 3), seg(2, 4), seg(2, 5)];
    const window = restorableWindow([backup('b1', 2, 2)], wal, mib16)!;
    expect(window.gaps).toEqual([]);
    expect(window.latest.segment).toBe(seg(2, 5));
  });

  test('no completed backup: no window, whatever WAL there is', () => {
    expect(restorableWindow([backup('b1', 2, 3, 'failed')], [seg(1, 2)], mib16)).toBeUndefined();
  });
});
