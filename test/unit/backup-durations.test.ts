import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { backupDurationData } from '#domain/backup/durations';
import { openRepository } from '#domain/repository/open';
import { handler as recordBackup } from '../../functions/record-backup.ts';
import { testManifest } from '../support/manifests.ts';

const backupId = '20261121T143000Z-a1b2c3';
const stopped = {
  ...testManifest({ backupId }),
  state: 'stopped' as const,
  stopLsn: '0/2000138',
  stopWalFile: '000000010000000000000002',
  timings: { startedAt: '2026-11-21T14:30:00.000Z', stoppedAt: '2026-11-21T14:30:12.000Z' },
};
const snapshots = [{ snapshotId: 'snap-1', volumeId: 'vol-1', state: 'pending' }];
const cloudwatch = mockClient(CloudWatchClient);
let dir: string;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pgsnap-durations-'));
  const repository = await openRepository(`file://${dir}`, 'orders-db');
  await repository.writeManifest(stopped);
  repository.close();
  cloudwatch.reset();
  vi.stubEnv('PGSNAP_METRICS_NAMESPACE', 'pgsnap');
  vi.stubEnv('PGSNAP_METRICS_DIMENSION', 'Cluster');
});
afterEach(() => {
  vi.unstubAllEnvs();
  rmSync(dir, { recursive: true, force: true });
});

const completed = () =>
  recordBackup({
    cluster: 'orders-db',
    backupId,
    repository: `file://${dir}`,
    state: 'completed',
    snapshots,
    snapshotsCreatedAt: '2026-11-21T14:30:10.000Z',
  });

describe('the durations of a completed backup', () => {
  test('record-backup publishes the backup-mode window, the whole backup and the snapshots’ completion', async () => {
    cloudwatch.on(PutMetricDataCommand).resolves({});
    expect(await completed()).toEqual({ state: 'completed' });
    const [call] = cloudwatch.commandCalls(PutMetricDataCommand);
    const input = call!.args[0].input;
    expect(input.Namespace).toBe('pgsnap');
    const byName = Object.fromEntries(input.MetricData!.map((d) => [d.MetricName, d]));
    expect(byName.BackupModeSeconds).toMatchObject({ Value: 12, Unit: 'Seconds' });
    // Fleet-wide: no cluster dimension, so the fleet pays for three metrics, not three per cluster.
    for (const datum of input.MetricData!) expect(datum.Dimensions).toBeUndefined();
    const completedAt = Date.parse(byName.BackupSeconds!.Timestamp!.toISOString());
    expect(byName.BackupSeconds!.Value).toBe((completedAt - Date.parse(stopped.timings.startedAt)) / 1000);
    expect(byName.SnapshotSeconds!.Value).toBe((completedAt - Date.parse('2026-11-21T14:30:10.000Z')) / 1000);
  });

  test('a backup stays completed when CloudWatch refuses the durations', async () => {
    cloudwatch
      .on(PutMetricDataCommand)
      .rejects(Object.assign(new Error('throttled'), { name: 'Throttling' }));
    expect(await completed()).toEqual({ state: 'completed' });
  });

  test('nothing is published without the namespace (pgsnap demo, the e2e tests)', async () => {
    vi.unstubAllEnvs();
    expect(await completed()).toEqual({ state: 'completed' });
    expect(cloudwatch.commandCalls(PutMetricDataCommand)).toEqual([]);
  });

  test('a backup that is not completed has no durations', () => {
    expect(backupDurationData(stopped, {})).toEqual([]);
  });
});
