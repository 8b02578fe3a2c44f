/**
 * The fleet bench's model (bench/fleet/): virtual time that passes only
 * between runnable work, and the EBS and EC2 limits answered with AWS's
 * error codes. The bench's figures are only as good as these answers.
 */
import { expect, test } from 'vitest';
import { VirtualClock } from '../../bench/fleet/clock.ts';
import { Ec2Model } from '../../bench/fleet/ec2.ts';
import { Draw } from '../../bench/fleet/random.ts';

const transfer = {
  snapshotFixedSeconds: 60,
  snapshotMiBPerSecond: 30,
  copyFixedSeconds: 240,
  copyMiBPerSecond: 40,
};
const start = new Date('2026-01-05T03:00:00.000Z');

test('virtual time: a 2 h wait passes at once, timers fire in order, Date follows the clock', async () => {
  const clock = new VirtualClock(start);
  clock.install(1);
  try {
    const order: string[] = [];
    const work = (async () => {
      await Promise.all([
        new Promise<void>((resolve) =>
          setTimeout(() => {
            order.push('2h');
            resolve();
          }, 2 * 3_600_000),
        ),
        clock.sleep(1_000).then(() => order.push('1s')),
      ]);
      return new Date().toISOString();
    })();
    const wall = performance.now();
    expect(await clock.run(work, 3 * 3_600_000)).toBe('2026-01-05T05:00:00.000Z');
    expect(order).toEqual(['1s', '2h']);
    expect(performance.now() - wall).toBeLessThan(1_000);
  } finally {
    clock.uninstall();
  }
});

function fleet(clusters: number) {
  const clock = new VirtualClock(start);
  const ec2 = new Ec2Model(clock, transfer, new Draw(3));
  for (let i = 0; i < clusters; i++) {
    const instanceId = `i-${i}`;
    ec2.addInstance(
      instanceId,
      [],
      [0, 1, 2].map((v) => ({
        volumeId: `vol-${i}-${v}`,
        instanceId,
        device: `/dev/sd${v}`,
        sizeGiB: 100,
        changedGiB: 1,
      })),
    );
  }
  const snapshot = (i: number) =>
    ec2.answer('eu-west-1', 'CreateSnapshots', { InstanceSpecification: { InstanceId: `i-${i}` } });
  return { clock, ec2, snapshot };
}

const codeOf = (fn: () => unknown) => {
  try {
    fn();
    return 'answered';
  } catch (error) {
    return (error as Error).name;
  }
};

test('the 34th cluster of 3 volumes meets PendingSnapshotLimitExceeded: 100 pending per Region', () => {
  const { ec2, snapshot, clock } = fleet(40);
  const codes: string[] = [];
  for (let i = 0; i < 34; i++) {
    clock.now += 1_000; // the create bucket refills 5 per second: not the limit here
    codes.push(codeOf(() => snapshot(i)));
  }
  expect(codes.slice(0, 33)).toEqual(Array(33).fill('answered'));
  expect(codes[33]).toBe('PendingSnapshotLimitExceeded');
  expect(ec2.region('eu-west-1').pending.peak).toBe(99);
});

test('CreateSnapshots beyond its token bucket (100, refill 5/s) answers RequestLimitExceeded', () => {
  const { ec2 } = fleet(1);
  const codes = Array.from({ length: 101 }, () =>
    codeOf(() => ec2.answer('eu-west-1', 'DeleteSnapshot', { SnapshotId: 'snap-none' })),
  );
  expect(codes.filter((c) => c === 'InvalidSnapshot.NotFound')).toHaveLength(100);
  expect(codes[100]).toBe('RequestLimitExceeded');
});

test('the 21st concurrent copy into a Region answers ResourceLimitExceeded', async () => {
  const { ec2, snapshot, clock } = fleet(8);
  clock.install(2);
  try {
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      clock.now += 1_000;
      const made = snapshot(i) as { Snapshots: Array<{ SnapshotId: string }> };
      ids.push(...made.Snapshots.map((s) => s.SnapshotId));
    }
    await clock.run(clock.sleep(3_600_000), 2 * 3_600_000); // every snapshot completes
    const codes = ids
      .slice(0, 21)
      .map((id) =>
        codeOf(() =>
          ec2.answer('us-west-2', 'CopySnapshot', { SourceRegion: 'eu-west-1', SourceSnapshotId: id }),
        ),
      );
    expect(codes.slice(0, 20)).toEqual(Array(20).fill('answered'));
    expect(codes[20]).toBe('ResourceLimitExceeded');
    expect(ec2.region('us-west-2').copies.peak).toBe(20);
  } finally {
    clock.uninstall();
  }
});
