/**
 * A completed backup of orders-db as the restore state machine finds it, on
 * one machine: its volumes are directories snapshotted by the copy provider
 * through the local EC2 (as the backup's create-snapshots step does, with
 * the host's volume records), its manifest completed with a backup_label,
 * and its WAL segments in a file:// repository.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSnapshotSet } from '#domain/ebs/create-snapshot-set';
import { openRepository } from '#domain/repository/open';
import type { Repository } from '#domain/repository/repository';
import { CopyProvider } from '../../agent/providers/copy.ts';
import { LocalEc2 } from '../../local/local-ec2.ts';
import { testManifest } from './manifests.ts';

export const backupId = '20261121T143000Z-a1b2c3';
export const instanceId = 'i-0000000000000000a';
const volumes = {
  root: 'vol-0000000000000000f',
  data: 'vol-00000000000000001',
  wal: 'vol-00000000000000002',
};

export interface RestoreFixture {
  scratch: string;
  url: string;
  ec2: LocalEc2;
  volumesFile: string;
  repository: Repository;
  /** Adds WAL segment files (names only matter to the restore's checks) to the repository. */
  archive(names: string[]): void;
  destroy(): void;
}

export async function completedBackup(): Promise<RestoreFixture> {
  const scratch = mkdtempSync(join(tmpdir(), 'pgsnap-restore-'));
  const dir = (name: string) => {
    const path = join(scratch, name);
    mkdirSync(path, { recursive: true });
    return path;
  };
  const data = dir('source/pgdata');
  writeFileSync(join(data, 'PG_VERSION'), '15\n');
  const wal = dir('source/pgwal');
  const volumesFile = join(scratch, 'volumes.json');
  const ec2 = new LocalEc2(
    new CopyProvider(dir('snapshots')),
    instanceId,
    [
      { volumeId: volumes.root, device: '/dev/xvda' },
      { volumeId: volumes.data, device: '/dev/sdf', holds: { role: 'data', path: data } },
      { volumeId: volumes.wal, device: '/dev/sdg', holds: { role: 'wal', path: wal } },
    ],
    '/dev/xvda',
    { workDir: dir('restored'), volumesFile },
  );
  const repoDir = dir('repository');
  const url = `file://${repoDir}`;
  const repository = await openRepository(url, 'orders-db');
  await repository.writeManifest(testManifest({ backupId }));
  const label = await repository.putArtifact(
    backupId,
    'backup_label',
    Buffer.from('START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n'),
  );
  const set = await createSnapshotSet(ec2.client, {
    cluster: 'orders-db',
    backupId,
    instanceId,
    volumeIds: [volumes.data, volumes.wal],
    repository,
    hostVolumes: [
      { volumeId: volumes.data, mountPoint: data, fstype: 'dir', paths: [{ role: 'data', path: data }] },
      { volumeId: volumes.wal, mountPoint: wal, fstype: 'dir', paths: [{ role: 'wal', path: wal }] },
    ],
  });
  const manifest = (await repository.readManifest(backupId))!;
  await repository.writeManifest({
    ...manifest,
    state: 'completed',
    stopLsn: '0/3000100',
    stopWalFile: '000000010000000000000003',
    wal: { first: '000000010000000000000002', last: '000000010000000000000003' },
    artifacts: [label],
    snapshots: manifest.snapshots.map((s) => ({ ...s, state: 'completed' })),
    timings: {
      ...manifest.timings,
      stoppedAt: '2026-11-21T14:30:05.000Z',
      completedAt: '2026-11-21T14:31:00.000Z',
    },
  });
  if (set.snapshots.length !== 2) throw new Error('the fixture backup should have two snapshots');
  const archive = (names: string[]) => {
    const walDir = join(repoDir, 'orders-db', 'wal');
    mkdirSync(walDir, { recursive: true });
    for (const name of names) writeFileSync(join(walDir, `${name}.zst`), 'a segment');
  };
  archive(['000000010000000000000002', '000000010000000000000003']);
  return {
    scratch,
    url,
    ec2,
    volumesFile,
    repository,
    archive,
    destroy: () => {
      repository.close();
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}
