import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Manifest } from '#domain/repository/manifest';
import { openRepository } from '#domain/repository/open';
import { handler as recordBackup } from '../../functions/record-backup.ts';
import { testManifest } from '../support/manifests.ts';

const backupId = '20261121T143000Z-a1b2c3';
let dir: string;
let url: string;

const started: Manifest = testManifest({ backupId });

const snapshots = [
  { snapshotId: 'snap-1', volumeId: 'vol-1', state: 'pending' },
  { snapshotId: 'snap-2', volumeId: 'vol-2', state: 'pending' },
];

async function write(manifest: Manifest): Promise<void> {
  const repository = await openRepository(url, 'orders-db');
  await repository.writeManifest(manifest);
  repository.close();
}

async function read(): Promise<Manifest | undefined> {
  const repository = await openRepository(url, 'orders-db');
  try {
    return await repository.readManifest(backupId);
  } finally {
    repository.close();
  }
}

const event = (extra: Record<string, unknown>) => ({
  cluster: 'orders-db',
  backupId,
  repository: url,
  ...extra,
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'pgsnap-record-'));
  url = `file://${dir}`;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('record-backup', () => {
  test('records the snapshot ids in the manifest, which then says snapshotting', async () => {
    await write(started);
    expect(await recordBackup(event({ state: 'snapshotting', snapshots }))).toEqual({
      state: 'snapshotting',
    });
    expect(await read()).toMatchObject({
      state: 'snapshotting',
      snapshots: [
        { provider: 'ebs', snapshotId: 'snap-1', volumeId: 'vol-1', state: 'pending' },
        { provider: 'ebs', snapshotId: 'snap-2', volumeId: 'vol-2', state: 'pending' },
      ],
    });
  });

  test('refuses to record snapshots of a backup the host did not catalogue, saying where to look', async () => {
    await expect(recordBackup(event({ state: 'snapshotting', snapshots }))).rejects.toMatchObject({
      name: 'ManifestStateError',
      message: expect.stringMatching(/no manifest in file:.*--repo or PGSNAP_REPO/),
    });
  });

  test('refuses to record snapshots of a backup the holder already aborted', async () => {
    await write({
      ...started,
      state: 'aborted',
      failure: { reason: 'maximum duration passed', at: started.updatedAt },
    });
    await expect(recordBackup(event({ state: 'snapshotting', snapshots }))).rejects.toMatchObject({
      name: 'ManifestStateError',
      message: expect.stringContaining('is aborted (maximum duration passed)'),
    });
  });

  test('marks a stopped backup completed once its snapshots are', async () => {
    await write({
      ...started,
      state: 'stopped',
      stopLsn: '0/2000138',
      stopWalFile: '000000010000000000000002',
    });
    expect(await recordBackup(event({ state: 'completed', snapshots }))).toEqual({ state: 'completed' });
    const manifest = await read();
    expect(manifest).toMatchObject({ state: 'completed', stopLsn: '0/2000138' });
    expect(manifest!.snapshots.map((s) => s.state)).toEqual(['completed', 'completed']);
    expect(manifest!.timings.completedAt).toBeDefined();
  });

  test('does not mark completed a backup whose end never stored its artifacts', async () => {
    await write({ ...started, state: 'snapshotting' });
    await expect(recordBackup(event({ state: 'completed', snapshots }))).rejects.toMatchObject({
      name: 'ManifestStateError',
      message: expect.stringContaining('is snapshotting, not stopped'),
    });
    expect((await read())!.state).toBe('snapshotting');
  });

  test('marks the backup failed with the error and its cause', async () => {
    await write({ ...started, state: 'snapshotting' });
    const error = {
      Error: 'SnapshotFailedError',
      Cause: 'snapshot snap-2 of volume vol-2 is in state error',
    };
    expect(await recordBackup(event({ state: 'failed', error }))).toEqual({ state: 'failed' });
    expect(await read()).toMatchObject({
      state: 'failed',
      failure: { reason: 'SnapshotFailedError: snapshot snap-2 of volume vol-2 is in state error' },
    });
  });

  test('a backup that failed before it had a manifest has nothing to mark', async () => {
    expect(await recordBackup(event({ state: 'failed', error: { Error: 'PreconditionError' } }))).toEqual({
      state: 'none',
    });
    expect(await read()).toBeUndefined();
  });
});
