import { describe, expect, it } from 'vitest';
import { backupIdOfExecution } from '#domain/backup/execution';
import { validateBackupId } from '#domain/ids';

const startTime = new Date('2026-11-21T14:30:00.123Z');
/** The console's default name: a random UUID. */
const consoleName = '3f8e2c1a-9b4d-4e7f-a2c6-5d1b0e9f7a34';

describe('the backupId of an execution', () => {
  it("derives one from a UUID name (the console's default): the start time, then a hash of the name", () => {
    // Pinned: a change here changes the backupId of an execution already running, whose steps disagree.
    expect(backupIdOfExecution({ name: consoleName, startTime })).toBe('20261121T143000Z-92dc8c');
  });

  it('gives the same execution the same backupId every time, wherever its start time is read', () => {
    // The first step reads $$.Execution.StartTime (ISO text); ListExecutions gives startDate (a Date).
    const fromContext = backupIdOfExecution({
      name: consoleName,
      startTime: new Date('2026-11-21T14:30:00.123Z'),
    });
    const fromListing = backupIdOfExecution({ name: consoleName, startTime: new Date(startTime.getTime()) });
    expect(fromContext).toBe(fromListing);
    expect(backupIdOfExecution({ name: consoleName, startTime })).toBe(fromContext);
  });

  it('keeps a name that is a backupId, as pgsnap backup start and the schedules give it', () => {
    // Even when its time is not the start time: pgsnap backup start makes the id just before it starts.
    expect(backupIdOfExecution({ name: '20261121T142959Z-a1b2c3', startTime })).toBe(
      '20261121T142959Z-a1b2c3',
    );
  });

  it.each([
    ['a typed name', 'nightly', '20261121T143000Z-2a3b62'],
    ['non-ASCII characters', 'Sicherung-vor-dem-Upgrade-ä', '20261121T143000Z-e8b7ab'],
  ])('derives one from %s', (_, name, backupId) => {
    expect(backupIdOfExecution({ name, startTime })).toBe(backupId);
  });

  it.each([
    ['the longest name Step Functions allows', 'x'.repeat(80)],
    ['the characters Step Functions allows besides letters and digits', "a.b_c-d+e=f@g!h'i(j)k"],
    ['a backupId in upper case, which is not one', '20261121T143000Z-A1B2C3'],
    ['a backupId with more after it', '20261121T143000Z-a1b2c3-retry'],
    ['CJK characters', '注文データベース'],
    ['one character', 'a'],
  ])('derives a valid backupId from %s', (_, name) => {
    const backupId = backupIdOfExecution({ name, startTime });
    expect(validateBackupId(backupId)).toBe(backupId);
    expect(backupId).toMatch(/^20261121T143000Z-/);
  });

  it('tells apart executions of different names started together, and of one name started at different times', () => {
    const ids = new Set([
      backupIdOfExecution({ name: consoleName, startTime }),
      backupIdOfExecution({ name: '5c0d9a7e-1f2b-4c3d-8e9f-0a1b2c3d4e5f', startTime }),
      backupIdOfExecution({ name: consoleName, startTime: new Date('2026-11-21T14:30:01.000Z') }),
    ]);
    expect(ids.size).toBe(3);
  });

  it('refuses an execution without a valid start time, rather than deriving an id from nothing', () => {
    expect(() => backupIdOfExecution({ name: consoleName, startTime: new Date('not a time') })).toThrow(
      expect.objectContaining({
        name: 'InvalidInputError',
        message: expect.stringMatching(/no valid start time/),
      }),
    );
  });
});
