/**
 * Retention cannot be steered from a database host (issue 28). In AWS a host
 * cannot write a manifest at all (its policy and the bucket policy deny it,
 * test/infra/iam.test.ts); this suite assumes it got one written anyway and
 * replays what such a host did on the old main: flipped real manifests to
 * `failed`, moved the newest backup's start WAL file forward, and wrote a
 * `completed` manifest with no snapshot. The retention Lambda runs against
 * moto's EC2 (real snapshots with the tags CreateSnapshots puts on them) and a
 * file:// repository whose manifests the orchestrator's own code recorded.
 * Every real backup, its snapshots and the WAL from the oldest kept backup's
 * start must survive, and each forgery is reported, never acted on.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateSnapshotCommand,
  CreateVolumeCommand,
  DescribeSnapshotsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { recordStep } from '#domain/backup/lifecycle';
import { recordBegun, recordStopped } from '#domain/backup/proposal';
import type { RetentionSummary } from '#domain/ebs/retention';
import type { Manifest } from '#domain/repository/manifest';
import { openRepository } from '#domain/repository/open';
import type { Repository } from '#domain/repository/repository';
import { applyRetentionHandler } from '../../functions/apply-retention.ts';
import { setLocalCatalog } from '../../local/state-machine.ts';
import { Moto, skipWithoutMoto } from '../support/moto.ts';

const cluster = 'orders-db';
const identity = { systemIdentifier: '7311111111111111111', walSegmentSize: 16 * 1024 * 1024 };
const segment = (n: number) => `00000001000000000000000${n.toString(16).toUpperCase()}`;

describe.skipIf(skipWithoutMoto)('a host that got manifests written cannot steer retention', () => {
  let moto: Moto;
  let ec2: EC2Client;
  let dir: string;
  let url: string;
  /** The three real backups, oldest first, with their snapshot ids. */
  let real: Array<{ backupId: string; snapshotId: string; startWalFile: string }>;

  beforeAll(async () => {
    moto = await Moto.start();
    ec2 = new EC2Client(moto.client('eu-west-1'));
  });
  afterAll(async () => {
    ec2?.destroy();
    await moto?.stop();
  });

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pgsnap-forged-'));
    url = `file://${dir}`;
    const repository = await openRepository(url, cluster);
    const pin = await repository.pin(identity, 'pgsnap begin');
    for (let n = 1; n <= 8; n++)
      await repository.pushWal(pin, segment(n), Buffer.alloc(identity.walSegmentSize, n));
    const { VolumeId } = await ec2.send(
      new CreateVolumeCommand({ AvailabilityZone: 'eu-west-1a', Size: 10 }),
    );
    real = [];
    for (const [i, day] of [1, 2, 3].entries()) {
      const backupId = `202611${String(day).padStart(2, '0')}T030000Z-00000${i + 1}`;
      const startWalFile = segment(2 * i + 2);
      real.push({
        backupId,
        startWalFile,
        snapshotId: await recordRealBackup(repository, backupId, startWalFile),
      });
    }
    repository.close();

    /** A backup as the orchestrator records it: begin's proposal, EC2's snapshot, end's proposal, completed. */
    async function recordRealBackup(
      repo: Repository,
      backupId: string,
      startWalFile: string,
    ): Promise<string> {
      const at = `${backupId.slice(0, 4)}-${backupId.slice(4, 6)}-${backupId.slice(6, 8)}T03:00:00.000Z`;
      await recordBegun(
        repo,
        backupId,
        {
          backupId,
          label: 'nightly',
          startLsn: `0/${startWalFile.slice(-1)}000028`,
          startWalFile,
          timeline: 1,
          systemIdentifier: identity.systemIdentifier,
          serverVersion: '17.2',
          startedAt: at,
          backupFrom: 'primary',
        },
        'i-0db',
      );
      const { SnapshotId } = await ec2.send(
        new CreateSnapshotCommand({
          VolumeId,
          TagSpecifications: [
            {
              ResourceType: 'snapshot',
              Tags: [
                { Key: 'pgsnap:cluster', Value: cluster },
                { Key: 'pgsnap:backup-id', Value: backupId },
              ],
            },
          ],
        }),
      );
      const snapshots = [
        { provider: 'ebs' as const, snapshotId: SnapshotId!, volumeId: VolumeId!, state: 'pending' },
      ];
      await recordStep(repo, backupId, { step: 'snapshotsTaken', snapshots });
      const label = await repo.putArtifact(
        backupId,
        'backup_label',
        Buffer.from(
          `START WAL LOCATION: 0/${startWalFile.slice(-1)}000028 (file ${startWalFile})\nCHECKPOINT LOCATION: 0/2000060\n`,
        ),
      );
      await recordStopped(repo, backupId, {
        backupId,
        stopLsn: `0/${startWalFile.slice(-1)}000138`,
        stopWalFile: startWalFile,
        stopTimeline: 1,
        stoppedAt: at,
        archiveWaitMs: 0,
        artifacts: [label],
      });
      await recordStep(repo, backupId, {
        step: 'snapshotsCompleted',
        snapshots: snapshots.map((s) => ({ ...s, state: 'completed' })),
      });
      return SnapshotId!;
    }
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** What the host writes, as it could with a write on the manifests' keys. */
  async function forge(backupId: string, change: (m: Manifest) => Manifest): Promise<void> {
    const repository = await openRepository(url, cluster);
    try {
      await repository.writeManifest(change((await repository.readManifest(backupId))!));
    } finally {
      repository.close();
    }
  }

  async function retention(keepLast: number): Promise<RetentionSummary> {
    setLocalCatalog({
      clusters: [
        {
          name: cluster,
          fastCheckpoint: false,
          maxBackupMinutes: 60,
          repository: url,
          retention: { keepLast, schedule: 'rate(1 day)' },
        },
      ],
    });
    return (await applyRetentionHandler(ec2)({ cluster, repository: url })) as RetentionSummary;
  }

  async function snapshotsLeft(): Promise<string[]> {
    const { Snapshots } = await ec2.send(
      new DescribeSnapshotsCommand({ Filters: [{ Name: 'tag:pgsnap:cluster', Values: [cluster] }] }),
    );
    return (Snapshots ?? []).map((s) => s.SnapshotId!);
  }

  async function walLeft(): Promise<string[]> {
    const repository = await openRepository(url, cluster);
    try {
      return (await repository.listWal()).map((w) => w.name).sort();
    } finally {
      repository.close();
    }
  }

  test('real backups flipped to failed and the newest start moved forward: nothing real is deleted', async () => {
    for (const { backupId } of real.slice(0, 2)) {
      await forge(backupId, (m) => ({
        ...m,
        state: 'failed',
        failure: { reason: 'forged', at: m.updatedAt },
      }));
    }
    await forge(real[2]!.backupId, (m) => ({ ...m, startWalFile: segment(8), startLsn: '0/8000028' }));
    const snapshotsBefore = await snapshotsLeft();
    const walBefore = await walLeft();

    const summary = await retention(14);
    expect(summary.removed).toEqual([]);
    expect(await snapshotsLeft()).toEqual(expect.arrayContaining(real.map((r) => r.snapshotId)));
    expect((await snapshotsLeft()).length).toBe(snapshotsBefore.length);
    // The WAL the real backups need is all there: the forged start moved no cut.
    expect(await walLeft()).toEqual(walBefore);
    expect(summary.unverified.map((u) => u.backupId).sort()).toEqual(real.map((r) => r.backupId).sort());
  });

  test('a completed manifest without a snapshot, newest of all, does not push the real newest out of keepLast 1', async () => {
    const forgedId = '20261104T030000Z-0f0f0f';
    await forge(real[2]!.backupId, (m) => ({
      ...m,
      backupId: forgedId,
      snapshots: [],
      startWalFile: segment(8),
      timings: { startedAt: '2026-11-04T03:00:00.000Z', completedAt: '2026-11-04T03:00:00.000Z' },
    }));

    const summary = await retention(1);
    expect(summary.kept).toContain(real[2]!.backupId);
    expect(summary.removed).not.toContain(real[2]!.backupId);
    expect(summary.unverified).toEqual([
      expect.objectContaining({ backupId: forgedId, reason: expect.stringContaining('names no snapshot') }),
    ]);
    expect(await snapshotsLeft()).toContain(real[2]!.snapshotId);
    // The WAL from the real newest backup's start stays.
    expect(await walLeft()).toEqual(expect.arrayContaining([segment(6), segment(7), segment(8)]));
  });
});
