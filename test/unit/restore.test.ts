import { describe, expect, it } from 'vitest';
import { remapTablespaces } from '../../agent/restore/prepare.ts';

describe('tablespace remapping', () => {
  const map = '16384 /mnt/ts1\n16385 /mnt/odd\\\\path\n';

  it('rewrites only the tablespaces asked for, keeping the rest byte for byte', () => {
    expect(remapTablespaces(map, { '16384': '/restore/ts1' })).toBe(
      '16384 /restore/ts1\n16385 /mnt/odd\\\\path\n',
    );
  });

  it('escapes backslashes and newlines in the new path as PostgreSQL reads them', () => {
    expect(remapTablespaces(map, { '16385': '/a\\b' })).toBe('16384 /mnt/ts1\n16385 /a\\\\b\n');
  });

  it('refuses an OID the backup does not have', () => {
    expect(() => remapTablespaces(map, { '99999': '/x' })).toThrow(/99999: no such tablespace OID/);
  });
});
