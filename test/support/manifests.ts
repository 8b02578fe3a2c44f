/** Manifests that tests write into a repository themselves, as `begin` and `end` would have. */
import type { Manifest, ManifestCopy } from '#domain/repository/manifest';

/**
 * A backup of orders-db as `begin` records it (state started, no snapshots,
 * no stop LSN yet), with `fields` over it: the tests give the state, the
 * stop, the snapshots and the times they are about.
 */
export function testManifest(fields: Partial<Manifest> = {}): Manifest {
  return {
    schemaVersion: 1,
    cluster: 'orders-db',
    backupId: '20261121T143000Z-a1b2c3',
    label: 'nightly',
    state: 'started',
    systemIdentifier: '7311111111111111111',
    serverVersion: '15.18',
    backupFrom: 'primary',
    walSegmentSize: 16 * 1024 * 1024,
    timeline: 1,
    startLsn: '0/2000028',
    startWalFile: '000000010000000000000002',
    artifacts: [],
    snapshots: [],
    timings: { startedAt: '2026-11-21T14:30:00.000Z' },
    host: 'db1',
    updatedAt: '2026-11-21T14:30:00.000Z',
    ...fields,
  };
}

/** A DR copy of a backup's one snapshot, in `state` (pending, completed, failed...). */
export function testCopy(state: string): ManifestCopy {
  return {
    account: '444455556666',
    region: 'us-west-2',
    sourceSnapshotId: 'snap-1',
    snapshotId: 'snap-dr-1',
    state,
  };
}
