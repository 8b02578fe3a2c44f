/**
 * `pgsnap mount` with real block devices: XFS images on loop devices, one the
 * copy of the other (the same file system UUID, as a volume made from a
 * snapshot of a volume mounted on the same host has). The copy mounts with
 * nouuid, again without change (idempotent), never over a mount point in use,
 * and unmount takes away only its own mount.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newRestoreId } from '#domain/ids';
import type { RestoreRecord } from '#domain/repository/restore-record';
import { pgsnap } from '../support/pgsnap.ts';
import { type TestRepository, testRepository } from '../support/repository.ts';

function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'mounting loop devices needs root';
  for (const tool of ['losetup', 'mkfs.xfs', 'mount', 'blkid']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
      return `${tool} is missing (apt-get install xfsprogs)`;
    }
  }
  if (spawnSync('losetup', ['-f']).status !== 0) return 'no free loop device';
  return undefined;
}

const skip = unavailable();
if (skip && process.env.CI) throw new Error(`CI must run the XFS mount tests, but ${skip}`);
if (skip) console.warn(`SKIPPING the XFS mount tests: ${skip}`);

const volumeId = 'vol-0000000000000e001';

let root: string;
let repo: TestRepository;
const loops: string[] = [];
let original: string;
let twin: string;
const sourceMount = () => join(root, 'source-mnt');

function findmntAt(target: string): Array<{ source: string; options: string }> {
  const result = spawnSync(
    'findmnt',
    ['--json', '--list', '--output', 'SOURCE,OPTIONS', '--mountpoint', target],
    {
      encoding: 'utf8',
    },
  );
  if (result.status !== 0) return [];
  return (JSON.parse(result.stdout) as { filesystems: Array<{ source: string; options: string }> })
    .filesystems;
}

async function writeRecord(record: Partial<RestoreRecord>): Promise<string> {
  const restoreId = newRestoreId();
  const now = new Date().toISOString();
  const repository = await repo.open();
  try {
    await repository.writeRestoreRecord({
      schemaVersion: 1,
      restoreId,
      cluster: repo.cluster,
      backupId: '20261121T143000Z-0a1b2c',
      mode: 'drill',
      state: 'attached',
      checks: { amcheck: 'none' },
      repository: repo.url,
      volumes: [
        {
          snapshotId: 'snap-0000000000000e001',
          volumeId,
          source: {
            holds: [{ role: 'data', path: '/srv/pgdata/main' }],
            mountPoint: '/srv/pgdata',
            fstype: 'xfs',
            sizeGiB: 1,
            volumeType: 'gp3',
            encrypted: false,
            availabilityZone: 'local-1a',
          },
        },
      ],
      timings: { requestedAt: now },
      updatedAt: now,
      ...record,
    });
  } finally {
    repository.close();
  }
  return restoreId;
}

beforeAll(() => {
  if (skip) return;
  root = mkdtempSync(join(tmpdir(), 'pgsnap-xfs-'));
  chmodSync(root, 0o711);
  repo = testRepository('file');
  const image = join(root, 'original.img');
  execFileSync('truncate', ['-s', '320M', image]);
  execFileSync('mkfs.xfs', ['-q', image]);
  execFileSync('cp', ['--sparse=always', image, join(root, 'twin.img')]);
  original = execFileSync('losetup', ['-f', '--show', image], { encoding: 'utf8' }).trim();
  loops.push(original);
  twin = execFileSync('losetup', ['-f', '--show', join(root, 'twin.img')], { encoding: 'utf8' }).trim();
  loops.push(twin);
  // The source's own file system, mounted on this host.
  mkdirSync(sourceMount());
  execFileSync('mount', [original, sourceMount()]);
});

afterAll(() => {
  if (skip) return;
  const mounts = JSON.parse(
    execFileSync('findmnt', ['--json', '--list', '--output', 'TARGET'], { encoding: 'utf8' }),
  ) as {
    filesystems: Array<{ target: string }>;
  };
  for (const { target } of mounts.filesystems.filter((fs) => fs.target.startsWith(`${root}/`)).reverse()) {
    spawnSync('umount', [target]);
  }
  for (const loop of loops) spawnSync('losetup', ['-d', loop]);
  rmSync(root, { recursive: true, force: true });
  repo.destroy();
});

describe.skipIf(skip !== undefined)('pgsnap mount on block devices', () => {
  it('mounts the twin of a mounted XFS with nouuid, again without change, and unmount takes only it away', async () => {
    const uuid = (device: string) =>
      execFileSync('blkid', ['-p', '-o', 'value', '-s', 'UUID', device], { encoding: 'utf8' }).trim();
    expect(uuid(twin)).toBe(uuid(original));
    // Without nouuid the kernel refuses the twin: this is what pgsnap mount has to get round.
    const probe = join(root, 'probe');
    mkdirSync(probe);
    const plain = spawnSync('mount', [twin, probe], { encoding: 'utf8' });
    if (plain.status === 0) spawnSync('umount', [probe]);
    expect(plain.status).not.toBe(0);

    const localVolumes = join(root, 'local-volumes.json');
    execFileSync('sh', ['-c', `cat > ${localVolumes}`], {
      input: JSON.stringify({ volumes: [{ volumeId, path: join(root, 'unused'), device: twin }] }),
    });
    const env = { PGSNAP_LOCAL_VOLUMES: localVolumes };
    const mountRoot = join(root, 'restore');
    const restoreId = await writeRecord({ mountRoot });
    const flags = ['--restore-id', restoreId, ...repo.flags, '--json'];
    const target = join(mountRoot, 'srv/pgdata');

    const mounted = await pgsnap(['mount', ...flags], env);
    expect(mounted.code, mounted.stderr).toBe(0);
    expect(mounted.json).toEqual({
      restoreId,
      mounts: [
        { volumeId, device: twin, mountPoint: target, options: 'nosuid,nodev,noexec,nouuid', already: false },
      ],
    });
    expect(findmntAt(target)).toEqual([{ source: twin, options: expect.stringContaining('nouuid') }]);
    // A restored volume is the source host's: nothing on it is setuid, a device or a program here.
    expect(findmntAt(target)[0]!.options.split(',')).toEqual(
      expect.arrayContaining(['nosuid', 'nodev', 'noexec', 'nouuid']),
    );

    const again = await pgsnap(['mount', ...flags], env);
    expect(again.code, again.stderr).toBe(0);
    expect(again.json).toMatchObject({ mounts: [{ device: twin, mountPoint: target, already: true }] });
    expect(findmntAt(target)).toHaveLength(1);

    const unmounted = await pgsnap(['unmount', ...flags], env);
    expect(unmounted.code, unmounted.stderr).toBe(0);
    expect(unmounted.json).toMatchObject({
      volumes: [{ volumeId, mountPoint: target, action: 'unmounted' }],
    });
    expect(findmntAt(target)).toEqual([]);
    // The source's file system stays mounted.
    expect(findmntAt(sourceMount())).toEqual([{ source: original, options: expect.any(String) }]);
    const twice = await pgsnap(['unmount', ...flags], env);
    expect(twice.json).toMatchObject({ volumes: [{ action: 'not mounted' }] });
  });

  it('refuses a mount point where another file system is mounted, saying which', async () => {
    const localVolumes = join(root, 'local-volumes-in-use.json');
    execFileSync('sh', ['-c', `cat > ${localVolumes}`], {
      input: JSON.stringify({ volumes: [{ volumeId, path: join(root, 'unused'), device: twin }] }),
    });
    // A record without mountRoot whose mount point is where the source's file system is mounted.
    const restoreId = await writeRecord({});
    const repository = await repo.open();
    try {
      const record = (await repository.readRestoreRecord(restoreId))!;
      record.volumes[0]!.source.mountPoint = sourceMount();
      await repository.writeRestoreRecord(record);
    } finally {
      repository.close();
    }
    const refused = await pgsnap(['mount', '--restore-id', restoreId, ...repo.flags, '--json'], {
      PGSNAP_LOCAL_VOLUMES: localVolumes,
    });
    expect(refused.code).toBe(3);
    expect(refused.json).toMatchObject({ error: { name: 'MountPointInUseError' } });
    expect(refused.stderr).toContain(
      `mount point ${sourceMount()} for volume ${volumeId} is in use: ${original} (xfs)`,
    );
    expect(findmntAt(sourceMount())).toEqual([{ source: original, options: expect.any(String) }]);
  });
});
