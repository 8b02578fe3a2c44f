/**
 * Where `pgsnap restore --restore-id` puts a cluster's parts: at the paths
 * they had on the source, or below the record's mountRoot, with the
 * tablespaces and a WAL volume of its own remapped there.
 */
import { describe, expect, test } from 'vitest';
import type { RestoreRecord } from '#domain/repository/restore-record';
import { restoredLayout } from '../../agent/restore/restore-on-host.ts';
import { restoredPath } from '../../agent/restore/restore-paths.ts';

const volume = (mountPoint: string, holds: RestoreRecord['volumes'][number]['source']['holds']) => ({
  snapshotId: 'snap-00000000000000001',
  volumeId: 'vol-00000000000000001',
  source: {
    holds,
    mountPoint,
    fstype: 'xfs',
    sizeGiB: 10,
    volumeType: 'gp3',
    encrypted: true,
    availabilityZone: 'eu-west-1a',
  },
});

function record(mountRoot: string | undefined): RestoreRecord {
  return {
    schemaVersion: 1,
    restoreId: 'r-20261121T143000Z-0a1b2c',
    cluster: 'orders-db',
    backupId: '20261121T120000Z-0a1b2c',
    mode: 'restore',
    state: 'attached',
    checks: { amcheck: 'all' },
    repository: 's3://bucket/pg',
    ...(mountRoot ? { mountRoot } : {}),
    volumes: [
      volume('/var/lib/postgresql', [
        { role: 'data', path: '/var/lib/postgresql/15/main' },
        { role: 'wal', path: '/var/lib/postgresql/15/main/pg_wal' },
      ]),
      volume('/pgwal', [{ role: 'wal', path: '/pgwal/15/main' }]),
      volume('/mnt/ts1', [{ role: 'tablespace', path: '/mnt/ts1/pg', tablespaceOid: '16390' }]),
    ],
    timings: { requestedAt: '2026-11-21T14:30:00.000Z' },
    updatedAt: '2026-11-21T14:30:00.000Z',
  };
}

describe('the restored layout', () => {
  test('without mountRoot, every part goes back where it was: nothing to remap', () => {
    expect(restoredLayout(record(undefined))).toEqual({
      pgdata: '/var/lib/postgresql/15/main',
      tablespaces: {},
    });
  });

  test('below mountRoot, the tablespaces and the WAL volume follow PGDATA there; pg_wal inside PGDATA is no WAL volume', () => {
    expect(restoredLayout(record('/restore/r1'))).toEqual({
      pgdata: '/restore/r1/var/lib/postgresql/15/main',
      tablespaces: { '16390': '/restore/r1/mnt/ts1/pg' },
      walDir: '/restore/r1/pgwal/15/main',
    });
  });

  test('a path that leaves mountRoot once normalised is refused, whatever the schema let through', () => {
    for (const path of ['/x\n/../../etc', '/../etc', '/srv/../../etc']) {
      expect(() => restoredPath({ mountRoot: '/restore' }, path)).toThrow(
        expect.objectContaining({ name: 'UnsafeRestorePathError' }),
      );
    }
    expect(() => restoredPath({ mountRoot: '/restore/../etc' }, '/data')).toThrow(
      expect.objectContaining({ name: 'UnsafeRestorePathError' }),
    );
  });

  test('a mount point joins mountRoot with one slash, whatever the ends', () => {
    expect(restoredPath({ mountRoot: '/restore/' }, '/data')).toBe('/restore/data');
    expect(restoredPath({ mountRoot: '/restore' }, '/')).toBe('/restore');
    expect(restoredPath({}, '/data/')).toBe('/data');
  });

  test('a record whose volumes hold no data directory is refused, naming its snapshots', () => {
    const only = { ...record(undefined), volumes: [record(undefined).volumes[2]!] };
    expect(() => restoredLayout(only)).toThrow(
      /none of its volumes holds the data directory \(snap-00000000000000001\)/,
    );
  });
});
