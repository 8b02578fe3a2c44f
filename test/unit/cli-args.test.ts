import { describe, expect, it } from 'vitest';
import { parse } from '../../agent/cli/args.ts';
import { parseTablespaces } from '../../agent/cli/restore-flags.ts';

describe('flag parsing', () => {
  const options = {
    label: { type: 'string' },
    tablespace: { type: 'string', multiple: true },
  } as const;

  it('collects every value of a flag declared repeatable, in order', () => {
    const { values } = parse('restore', ['--tablespace', '16384=/a', '--tablespace', '16385=/b'], options);
    expect(values.tablespace).toEqual(['16384=/a', '16385=/b']);
  });

  it('refuses any other flag given twice, naming both values', () => {
    expect(() => parse('begin', ['--label', 'nightly', '--label', 'weekly'], options)).toThrow(
      /--label is given 2 times \("nightly", "weekly"\); give it once/,
    );
    expect(() => parse('begin', ['--repo', 'file:///a', '--repo=file:///b'], options)).toThrow(
      /--repo is given 2 times/,
    );
  });
});

describe('restore --tablespace', () => {
  it('maps each OID to its new place', () => {
    expect(parseTablespaces(['16384=/mnt/a', '16385=/mnt/b'])).toEqual({
      '16384': '/mnt/a',
      '16385': '/mnt/b',
    });
  });

  it('refuses one OID sent to two places', () => {
    expect(() => parseTablespaces(['16384=/mnt/a', '16384=/mnt/b'])).toThrow(
      '--tablespace 16384 is given two places (/mnt/a and /mnt/b); give each tablespace OID once',
    );
  });
});
