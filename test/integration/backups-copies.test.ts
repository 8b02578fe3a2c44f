/**
 * `pgsnap backups list` and `show` tell an operator where each backup was
 * copied and how each copy stands, from the manifests alone (no AWS access).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Manifest } from '#domain/repository/manifest';
import { openRepository } from '#domain/repository/open';
import { testManifest } from '../support/manifests.ts';
import { pgsnap } from '../support/pgsnap.ts';

let dir: string;
let flags: string[];

const base: Manifest = testManifest({
  state: 'completed',
  stopLsn: '0/2000138',
  snapshots: [
    { provider: 'ebs', snapshotId: 'snap-a', volumeId: 'vol-a', state: 'completed' },
    { provider: 'ebs', snapshotId: 'snap-b', volumeId: 'vol-b', state: 'completed' },
  ],
  updatedAt: '2026-11-21T14:40:00.000Z',
});
const copy = (sourceSnapshotId: string, state: string, extra: Record<string, string> = {}) => ({
  account: '444455556666',
  region: 'us-west-2',
  sourceSnapshotId,
  snapshotId: `${sourceSnapshotId}-dr`,
  state,
  ...extra,
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pgsnap-copies-'));
  flags = ['--repo', `file://${dir}`, '--cluster', 'orders-db'];
  const repository = await openRepository(`file://${dir}`, 'orders-db');
  await repository.pin(
    { systemIdentifier: base.systemIdentifier, walSegmentSize: base.walSegmentSize },
    'test',
  );
  await repository.writeManifest({
    ...base,
    copies: [copy('snap-a', 'completed'), copy('snap-b', 'completed')],
  });
  await repository.writeManifest({
    ...base,
    backupId: '20261122T143000Z-d4e5f6',
    copies: [copy('snap-a', 'completed'), copy('snap-b', 'pending')],
  });
  await repository.writeManifest({
    ...base,
    backupId: '20261123T143000Z-0a0b0c',
    copies: [
      copy('snap-a', 'failed', { reason: 'CopyFailedError: DR copy snap-a-dr is in state error' }),
      copy('snap-b', 'failed', { reason: 'CopyFailedError: DR copy snap-a-dr is in state error' }),
    ],
  });
  await repository.writeManifest({ ...base, backupId: '20261124T143000Z-111111' });
  repository.close();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('pgsnap backups with DR copies', () => {
  test('list shows each backup’s copies and their states, and - for a backup not copied', async () => {
    const list = await pgsnap(['backups', 'list', ...flags], {});
    expect(list.stderr).toBe('');
    expect(list.code).toBe(0);
    const lines = list.stdout.trim().split('\n');
    expect(lines[0]).toContain('COPIES');
    expect(lines[1]).toMatch(/20261121T143000Z-a1b2c3 .* 444455556666\/us-west-2 completed /);
    expect(lines[2]).toMatch(/20261122T143000Z-d4e5f6 .* 444455556666\/us-west-2 pending 1\/2 completed /);
    expect(lines[3]).toMatch(/20261123T143000Z-0a0b0c .* 444455556666\/us-west-2 failed /);
    expect(lines[4]).toMatch(/20261124T143000Z-111111 .* - +never +nightly$/);
  });

  test('list --json carries the copies of each manifest', async () => {
    const list = await pgsnap(['backups', 'list', '--json', ...flags], {});
    const backups = list.json!.backups as Manifest[];
    expect(backups.map((b) => b.copies?.map((c) => c.state) ?? [])).toEqual([
      ['completed', 'completed'],
      ['completed', 'pending'],
      ['failed', 'failed'],
      [],
    ]);
  });

  test('show names every copy, where it is, and why it failed', async () => {
    const show = await pgsnap(['backups', 'show', '20261123T143000Z-0a0b0c', ...flags], {});
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(
      'copy snap-a-dr of snap-a in 444455556666/us-west-2: failed (CopyFailedError: DR copy snap-a-dr is in state error)',
    );
  });
});
