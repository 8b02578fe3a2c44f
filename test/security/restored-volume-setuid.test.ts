/**
 * A setuid-root program on a restored volume gives nobody root (issue 28): a
 * restored volume is the source host's, whose PostgreSQL superuser (or root
 * there) could put anything on it. pgsnap mounts it nosuid, nodev, noexec,
 * as the kernel's own mount table shows, and running the program as an
 * unprivileged user on the target does not give euid 0. A real ext4 file
 * system on a loop device, mounted by the real agent as root.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newRestoreId } from '#domain/ids';
import type { RestoreRecord } from '#domain/repository/restore-record';
import { pgsnap } from '../support/pgsnap.ts';
import { type TestRepository, testRepository } from '../support/repository.ts';
import { mountsBelow, skipReason, unmountBelow, volumeRecord } from './hostile-restore.ts';

const skip = skipReason('the setuid restored-volume test', { loopDevices: true });

const volumeId = 'vol-0000000000000f00a';
let work: string;
let loop: string | undefined;
let repo: TestRepository;

beforeAll(() => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), 'pgsnap-setuid-'));
  chmodSync(work, 0o711);
  repo = testRepository('file');
  // The source's volume: ext4 with a setuid-root copy of id(1) on it.
  const image = join(work, 'volume.img');
  execFileSync('truncate', ['-s', '64M', image]);
  execFileSync('mkfs.ext4', ['-q', '-F', image]);
  loop = execFileSync('losetup', ['-f', '--show', image], { encoding: 'utf8' }).trim();
  const staging = join(work, 'staging');
  mkdirSync(staging);
  execFileSync('mount', [loop, staging]);
  try {
    copyFileSync('/usr/bin/id', join(staging, 'suid-id'));
    chmodSync(join(staging, 'suid-id'), 0o4755);
  } finally {
    execFileSync('umount', [staging]);
  }
});

afterAll(() => {
  if (skip) return;
  unmountBelow(work);
  if (loop) spawnSync('losetup', ['-d', loop]);
  rmSync(work, { recursive: true, force: true });
  repo.destroy();
});

describe.skipIf(skip !== undefined)('a setuid file on a restored volume', () => {
  it('is mounted nosuid,nodev,noexec, and a user running it does not get euid 0', async () => {
    const localVolumes = join(work, 'local-volumes.json');
    writeFileSync(
      localVolumes,
      JSON.stringify({ volumes: [{ volumeId, path: join(work, 'unused'), device: loop }] }),
    );
    const restoreId = newRestoreId();
    const mountRoot = join(work, 'mnt');
    const now = new Date().toISOString();
    const record: RestoreRecord = {
      schemaVersion: 1,
      restoreId,
      cluster: repo.cluster,
      backupId: '20261121T143000Z-0a1b2c',
      mode: 'drill',
      state: 'attached',
      checks: { amcheck: 'none' },
      mountRoot,
      repository: repo.url,
      volumes: [{ snapshotId: 'snap-0000000000000f00a', volumeId, source: volumeRecord('data', '/srv/pg') }],
      timings: { requestedAt: now },
      updatedAt: now,
    };
    const repository = await repo.open();
    try {
      await repository.writeRestoreRecord(record);
    } finally {
      repository.close();
    }
    const flags = ['--restore-id', restoreId, ...repo.flags, '--json'];
    const mounted = await pgsnap(['mount', ...flags], { PGSNAP_LOCAL_VOLUMES: localVolumes });
    expect(mounted.code, mounted.stderr).toBe(0);
    const target = join(mountRoot, 'srv/pg');
    const [mount] = mountsBelow(target);
    expect(mount?.target).toBe(target);
    expect(mount!.options).toEqual(expect.arrayContaining(['nosuid', 'nodev', 'noexec']));

    // An unprivileged user of the target runs the restored setuid-root program.
    const ran = spawnSync('runuser', ['-u', 'nobody', '--', join(target, 'suid-id'), '-u'], {
      encoding: 'utf8',
    });
    expect(ran.stdout.trim()).not.toBe('0');

    const unmounted = await pgsnap(['unmount', ...flags], { PGSNAP_LOCAL_VOLUMES: localVolumes });
    expect(unmounted.code, unmounted.stderr).toBe(0);
    expect(mountsBelow(target)).toEqual([]);
  });
});
