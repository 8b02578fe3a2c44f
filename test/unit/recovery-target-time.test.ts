import { describe, expect, it } from 'vitest';
import { recoveryTargetSchema } from '#domain/repository/restore-record';
import { recoveryTargetTime } from '#domain/restore/request';

describe('a recovery target time', () => {
  it('keeps the microseconds given, in UTC', () => {
    expect(recoveryTargetTime('2026-11-21T15:45:00.123456+01:00')).toBe('2026-11-21T14:45:00.123456Z');
    expect(recoveryTargetTime('2026-11-21 14:45:00.1234Z')).toBe('2026-11-21T14:45:00.1234Z');
    expect(recoveryTargetTime('2026-11-21T14:45:00,5-0230')).toBe('2026-11-21T17:15:00.500Z');
  });

  it('writes a whole second as JavaScript does, and the result is a valid target', () => {
    expect(recoveryTargetTime('2026-11-21T14:45:00Z')).toBe('2026-11-21T14:45:00.000Z');
    const time = recoveryTargetTime('2026-11-21T14:45:00.000001Z')!;
    expect(recoveryTargetSchema.parse({ time })).toEqual({ time: '2026-11-21T14:45:00.000001Z' });
  });

  it('refuses a time without a zone, or that is not one', () => {
    expect(recoveryTargetTime('2026-11-21T14:45:00')).toBeUndefined();
    expect(recoveryTargetTime('yesterday')).toBeUndefined();
    expect(recoveryTargetTime('2026-13-45T14:45:00Z')).toBeUndefined();
  });
});
