import { DescribeVolumeStatusCommand, EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { type RestoreRecord, validateRestoreRecord } from '#domain/repository/restore-record';
import { measureInitialization } from '#domain/restore/initialization';
import { applyUpdate, modelTimeToFullSpeed } from '#domain/restore/lifecycle';
import { recordLines } from '../../agent/cli/restore-lines.ts';
import { awsFacts } from '../../local/aws-facts.ts';

const ec2 = mockClient(EC2Client);
const volumeIds = ['vol-0a0a0a0a0a0a0a0a1', 'vol-0a0a0a0a0a0a0a0a2'];
const at = new Date('2026-11-21T15:10:00.000Z');

function record(initialization: RestoreRecord['initialization']): RestoreRecord {
  return validateRestoreRecord(
    {
      schemaVersion: 1,
      restoreId: 'r-20261121T150000Z-a1b2c3',
      cluster: 'orders-db',
      backupId: '20261121T140000Z-0a1b2c',
      mode: 'drill',
      state: 'running',
      checks: { amcheck: 'none' },
      repository: 's3://pgsnap-repo/',
      volumes: [],
      initialization,
      timings: {
        requestedAt: '2026-11-21T15:00:00.000Z',
        volumesCreatedAt: '2026-11-21T15:01:00.000Z',
        acceptingAt: '2026-11-21T15:08:00.000Z',
      },
      rtoSeconds: 480,
      updatedAt: '2026-11-21T15:08:00.000Z',
    },
    'the test record',
  );
}

const provisioned = { rateMiBps: 143, basis: 'provisioned' as const, fullSpeedSeconds: 3600, billedGiB: 600 };

describe("time to full speed measured by EBS (DescribeVolumeStatus' InitializationStatusDetails)", () => {
  beforeEach(() => ec2.reset());

  it('at a provisioned rate: the slowest volume decides, by EBS estimate of the time left', async () => {
    ec2.on(DescribeVolumeStatusCommand).resolves({
      VolumeStatuses: [
        {
          VolumeId: volumeIds[0],
          InitializationStatusDetails: {
            InitializationType: awsFacts.volumeInitialization.estimatedTimeOnlyFor,
            Progress: 20,
            EstimatedTimeToCompleteInSeconds: 2400,
          },
        },
        {
          VolumeId: volumeIds[1],
          InitializationStatusDetails: {
            InitializationType: 'provisioned-rate',
            Progress: 90,
            EstimatedTimeToCompleteInSeconds: 120,
          },
        },
      ],
    });
    const measured = await measureInitialization(ec2 as unknown as EC2Client, volumeIds, at);
    expect(measured).toEqual({
      at: at.toISOString(),
      volumes: 2,
      reported: 2,
      progress: 20,
      remainingSeconds: 2400,
    });
    expect(ec2.commandCalls(DescribeVolumeStatusCommand)[0]!.args[0].input.VolumeIds).toEqual(volumeIds);

    const next = applyUpdate(record(provisioned), { phase: 'initialization', measured });
    // Measured 600 s after the request, 2,400 s left: full speed 3,000 s after the request, against the model's 3,660.
    expect(next.timeToFullSpeedSeconds).toBe(3000);
    expect(modelTimeToFullSpeed(next)).toBe(3660);
    expect(next.initialization?.measured).toEqual(measured);
    const lines = recordLines(next).join('\n');
    expect(lines).toMatch(/time to full speed:\s+3000 s \(EBS's estimate once open; the model said 3660 s\)/);
    expect(lines).toMatch(/20% initialized, 2400 s left by EBS's estimate/);
    expect(lines).toMatch(/provisioned 143 MiB\/s, 600 GiB billed/);
    // restore start --wait --initialization-price: the cost of the rate bought.
    expect(recordLines(next, { pricePerGiB: 0.01 }).join('\n')).toMatch(
      /initialization:\s+provisioned 143 MiB\/s, 600 GiB billed: \$6\.00 at \$0\.01\/GiB/,
    );
  });

  it('at the default rate: the progress is recorded, the time to full speed stays the estimate', async () => {
    ec2.on(DescribeVolumeStatusCommand).resolves({
      VolumeStatuses: volumeIds.map((VolumeId) => ({
        VolumeId,
        InitializationStatusDetails: { InitializationType: 'default', Progress: 35 },
      })),
    });
    const measured = await measureInitialization(ec2 as unknown as EC2Client, volumeIds, at);
    expect(measured).toEqual({ at: at.toISOString(), volumes: 2, reported: 2, progress: 35 });
    const next = applyUpdate(record({ rateMiBps: 40, basis: 'estimate', fullSpeedSeconds: 1000 }), {
      phase: 'initialization',
      measured,
    });
    expect(next.timeToFullSpeedSeconds).toBe(1060);
    expect(recordLines(next).join('\n')).toMatch(/time to full speed:\s+1060 s \(estimate\)/);
  });

  it('a volume EBS gives no details for yet is not counted as initialized', async () => {
    ec2.on(DescribeVolumeStatusCommand).resolves({
      VolumeStatuses: [
        {
          VolumeId: volumeIds[0],
          InitializationStatusDetails: {
            InitializationType: 'provisioned-rate',
            Progress: 100,
            EstimatedTimeToCompleteInSeconds: 0,
          },
        },
        { VolumeId: volumeIds[1] },
      ],
    });
    const measured = await measureInitialization(ec2 as unknown as EC2Client, volumeIds, at);
    expect(measured).toEqual({ at: at.toISOString(), volumes: 2, reported: 1 });
    const next = applyUpdate(record(provisioned), { phase: 'initialization', measured });
    expect(next.timeToFullSpeedSeconds).toBe(3660);
    expect(recordLines(next).join('\n')).toMatch(/initialization details for 1 of 2 volumes/);
  });
});
