import { describe, expect, it } from 'vitest';
import { parseDuration, validateLabel } from '#domain/backup/input';
import { UsageError } from '#domain/errors';
import { newBackupId, validateBackupId, validateClusterName } from '#domain/ids';

describe('labels', () => {
  it('accepts ordinary labels', () => {
    expect(validateLabel('nightly 2026-11-21 orders-db@eu-west-1')).toBe(
      'nightly 2026-11-21 orders-db@eu-west-1',
    );
  });

  it.each([
    ['empty', '', /must not be empty/],
    ['a newline', 'a\nb', /"\\n" at position 2/],
    ['over 128 characters', 'x'.repeat(129), /129 characters; a backup takes at most 128/],
    ['a command substitution', 'x$(reboot)', /"\$" at position 2/],
    ['a quote', "it's", /"'" at position 3/],
    ['a backtick', 'a`id`', /"`" at position 2/],
    ['a semicolon', 'a;rm', /";" at position 2/],
    ['a leading dash', '--fast', /must not start with "-"/],
  ])('refuses a label with %s', (_, label, message) => {
    expect(() => validateLabel(label)).toThrow(UsageError);
    expect(() => validateLabel(label)).toThrow(message);
  });

  it('accepts exactly 128 characters, the most the SSM document carries', () => {
    expect(validateLabel('x'.repeat(128))).toHaveLength(128);
  });
});

describe('backup ids', () => {
  it('makes ids that sort by time and validate', () => {
    const a = newBackupId(new Date('2026-11-21T14:30:00.123Z'));
    const b = newBackupId(new Date('2026-11-21T14:30:01Z'));
    expect(a).toMatch(/^20261121T143000Z-[0-9a-f]{6}$/);
    expect(validateBackupId(a)).toBe(a);
    expect(a < b).toBe(true);
  });

  it('refuses anything else', () => {
    expect(() => validateBackupId('../../etc')).toThrow(/expected the form 20261121T143000Z-a1b2c3/);
  });
});

describe('durations and cluster names', () => {
  it('parses durations with units', () => {
    expect(parseDuration('90s', '--x')).toBe(90_000);
    expect(parseDuration('1h30m', '--x')).toBe(5_400_000);
    expect(parseDuration('250ms', '--x')).toBe(250);
  });

  it('refuses a bare number, which could mean seconds or milliseconds', () => {
    expect(() => parseDuration('3600', '--max-duration')).toThrow(/--max-duration "3600" is not a duration/);
    expect(() => parseDuration('0s', '--max-duration')).toThrow(/longer than zero/);
  });

  it('checks cluster names', () => {
    expect(validateClusterName('orders-db')).toBe('orders-db');
    expect(() => validateClusterName('Orders DB')).toThrow(/not valid/);
  });
});
