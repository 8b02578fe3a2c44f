import { describe, expect, it } from 'vitest';
import {
  backupHistoryFileName,
  formatLsn,
  parseBackupLabel,
  parseLsn,
  walFileName,
  walFileNameBefore,
} from '#domain/wal/lsn';

const mb16 = 16 * 1024 * 1024;

describe('LSN arithmetic', () => {
  it('round-trips LSNs beyond 32 bits', () => {
    expect(parseLsn('16/B374D848')).toBe(0x16b374d848n);
    expect(formatLsn(0x16b374d848n)).toBe('16/B374D848');
    expect(formatLsn(parseLsn('0/0'))).toBe('0/0');
  });

  it('refuses text that is not an LSN, saying what is expected', () => {
    expect(() => parseLsn('16-B374D848')).toThrow(/expected the form 16\/B374D848/);
  });

  it('names segments as XLogFileName does, for 16 MB and 1 GB segments', () => {
    expect(walFileName(1, parseLsn('0/5000028'), mb16)).toBe('000000010000000000000005');
    expect(walFileName(3, parseLsn('16/B374D848'), mb16)).toBe('0000000300000016000000B3');
    expect(walFileName(1, parseLsn('5/40000000'), 64 * mb16)).toBe('000000010000000500000001');
  });

  it('puts a stop LSN on a segment boundary in the previous segment (XLByteToPrevSeg)', () => {
    expect(walFileNameBefore(1, parseLsn('0/6000000'), mb16)).toBe('000000010000000000000005');
    expect(walFileNameBefore(1, parseLsn('0/6000001'), mb16)).toBe('000000010000000000000006');
    expect(walFileNameBefore(1, parseLsn('1/0'), mb16)).toBe('0000000100000000000000FF');
  });

  it('names the backup history file after the start segment and offset', () => {
    expect(backupHistoryFileName(1, parseLsn('0/5000028'), mb16)).toBe(
      '000000010000000000000005.00000028.backup',
    );
  });
});

describe('backup label parsing', () => {
  const history = [
    'START WAL LOCATION: 0/5000028 (file 000000010000000000000005)',
    'STOP WAL LOCATION: 0/5000100 (file 000000010000000000000005)',
    'CHECKPOINT LOCATION: 0/5000060',
    'BACKUP METHOD: streamed',
    'BACKUP FROM: standby',
    'START TIME: 2025-01-01 10:00:00 UTC',
    'LABEL: nightly 1: with colon',
    'START TIMELINE: 2',
    'STOP TIME: 2025-01-01 10:00:05 UTC',
    'STOP TIMELINE: 3',
    '',
  ].join('\n');

  it('reads start, stop, timelines and the label', () => {
    const parsed = parseBackupLabel(history);
    expect(parsed.startLsn).toBe(parseLsn('0/5000028'));
    expect(parsed.stopLsn).toBe(parseLsn('0/5000100'));
    expect(parsed.checkpointLsn).toBe(parseLsn('0/5000060'));
    expect(parsed.backupFrom).toBe('standby');
    expect(parsed.label).toBe('nightly 1: with colon');
    expect(parsed.startTimeline).toBe(2);
    expect(parsed.stopTimeline).toBe(3);
  });

  it('takes the start timeline from the file name before PostgreSQL 11 wrote START TIMELINE', () => {
    const old =
      'START WAL LOCATION: 0/5000028 (file 000000040000000000000005)\nCHECKPOINT LOCATION: 0/5000060\n';
    expect(parseBackupLabel(old).startTimeline).toBe(4);
    expect(parseBackupLabel(old).backupFrom).toBe('primary');
  });
});
