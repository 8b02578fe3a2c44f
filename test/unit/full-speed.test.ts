import { describe, expect, it } from 'vitest';
import { PreconditionError } from '#domain/errors';
import type { RestoreVolume } from '#domain/repository/restore-record';
import {
  assumedDefaultMiBps,
  describeFullSpeed,
  modelFullSpeed,
  planInitializationRate,
} from '#domain/restore/full-speed';
import { hostTime, maxHostStepSeconds } from '#domain/restore/host-time';
import { timeToFullSpeed } from '#domain/restore/lifecycle';
import { planInitialization } from '#domain/restore/plan';

const GiB = 2 ** 30;

function volume(sizeGiB: number): RestoreVolume {
  return {
    snapshotId: 'snap-0123456789abcdef0',
    source: {
      holds: [{ role: 'data', path: '/var/lib/postgresql/data' }],
      mountPoint: '/var/lib/postgresql',
      fstype: 'xfs',
      sizeGiB,
      volumeType: 'gp3',
      encrypted: true,
      availabilityZone: 'eu-west-1a',
    },
  };
}

describe('the full-speed planner', () => {
  it('picks the slowest rate that initializes the largest volume within the objective, and states what is billed', () => {
    // 500 GiB in 60 minutes: 512,000 MiB / 3,600 s = 142.2, so 143 MiB/s.
    const plan = planInitializationRate([500 * GiB, 100 * GiB], 60, 0.01);
    expect(plan).toMatchObject({ rateMiBps: 143, basis: 'provisioned', billedGiB: 600, costUsd: 6 });
    expect(plan.seconds).toBeLessThanOrEqual(3600);
    expect(describeFullSpeed(plan)).toBe('60 min at a provisioned 143 MiB/s ($6.00 for 600 GiB)');
  });

  it('never goes below the 100 MiB/s EBS accepts', () => {
    expect(planInitializationRate([10 * GiB], 60).rateMiBps).toBe(100);
  });

  it('refuses an objective that 300 MiB/s cannot meet, saying how long the fastest rate takes', () => {
    // 2 TiB in 60 minutes would need 583 MiB/s; at 300 MiB/s it takes 117 minutes.
    expect(() => planInitializationRate([2048 * GiB], 60)).toThrow(PreconditionError);
    expect(() => planInitializationRate([2048 * GiB], 60)).toThrow(
      /needs 583 MiB\/s .* 300 MiB\/s at most, which takes 117 minutes/,
    );
  });

  it('without a rate, estimates at the documented default and says it is an estimate', () => {
    const estimate = modelFullSpeed(100 * GiB);
    expect(estimate).toEqual({
      seconds: Math.ceil((100 * 1024) / assumedDefaultMiBps),
      rateMiBps: 40,
      basis: 'estimate',
    });
    expect(describeFullSpeed(estimate)).toMatch(/an estimate/);
  });

  it('the restore record carries the choice; a rate and an objective together are refused', () => {
    expect(planInitialization([volume(500)], { fullSpeedMinutes: 60 })).toEqual({
      rateMiBps: 143,
      basis: 'provisioned',
      fullSpeedSeconds: Math.ceil((500 * 1024) / 143),
      objectiveMinutes: 60,
      billedGiB: 500,
    });
    expect(planInitialization([volume(50)], {})).toMatchObject({ basis: 'estimate', rateMiBps: 40 });
    expect(() => planInitialization([volume(50)], { initializationRate: 200, fullSpeedMinutes: 30 })).toThrow(
      /either an initialization rate or a full-speed objective/,
    );
  });

  it('time to full speed counts from the request, and is never before the server opened', () => {
    const record = {
      timings: { requestedAt: '2026-11-21T15:00:00.000Z', volumesCreatedAt: '2026-11-21T15:01:00.000Z' },
      rtoSeconds: 300,
      initialization: { rateMiBps: 143, basis: 'provisioned' as const, fullSpeedSeconds: 3000 },
    };
    expect(timeToFullSpeed(record as never)).toBe(3060);
    expect(
      timeToFullSpeed({
        ...record,
        initialization: { ...record.initialization, fullSpeedSeconds: 10 },
      } as never),
    ).toBe(300);
  });
});

describe("the host step's time", () => {
  it("exceeds the host's recovery timeout by the checks for the backup's size and a margin", () => {
    const time = hostTime({ recoverySeconds: 6 * 3600, dataBytes: 1024 * GiB, amcheck: true });
    expect(Number(time.recoverySeconds)).toBe(6 * 3600);
    // 1 TiB read at 40 MiB/s: 26,215 s of checks.
    expect(time.stepSeconds).toBe(6 * 3600 + 26_215 + 900);
  });

  it('a provisioned rate shortens the checks; SSM caps the step and the recovery fits below it', () => {
    expect(hostTime({ dataBytes: 1024 * GiB, amcheck: true, initializationRate: 300 }).stepSeconds).toBe(
      6 * 3600 + 3496 + 900,
    );
    const capped = hostTime({ recoverySeconds: 46 * 3600, dataBytes: 8192 * GiB, amcheck: true });
    expect(capped.stepSeconds).toBe(maxHostStepSeconds);
    expect(Number(capped.recoverySeconds)).toBeLessThan(capped.stepSeconds);
  });
});
