/** A backup's manifest as `pgsnap begin` writes it (state `started`), for tests of the steps after it. */
import type { Manifest } from '#domain/repository/manifest';

export function startedManifest(cluster: string, backupId: string): Manifest {
  const now = new Date().toISOString();
  return {
    schemaVersion: 1,
    cluster,
    backupId,
    label: 'test',
    state: 'started',
    systemIdentifier: '7710631090410220509',
    serverVersion: '160004',
    backupFrom: 'primary',
    walSegmentSize: 16 * 1024 * 1024,
    timeline: 1,
    startLsn: '0/2000028',
    startWalFile: '000000010000000000000002',
    artifacts: [],
    snapshots: [],
    timings: { startedAt: now },
    host: 'db-1',
    updatedAt: now,
  };
}
