/**
 * The wait before the next snapshot (or DR copy) poll, chosen from what EBS
 * reports (domain/ebs/poll-wait.ts): the predicted remaining time of the
 * slowest snapshot, within [firstPollSeconds, maxPollSeconds].
 */
import { DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { checkSnapshotSet } from '#domain/ebs/check-snapshot-set';
import { memoryOf, nextPollSeconds, percentOf, type SnapshotReading } from '#domain/ebs/poll-wait';
import { awsFacts } from '../../local/aws-facts.ts';

const bounds = { firstPollSeconds: 30, maxPollSeconds: 1800 };
const start = new Date('2026-12-07T12:00:00Z');
const at = (seconds: number) => new Date(start.getTime() + seconds * 1000);
const reading = (progress: string, state = 'pending', snapshotId = 'snap-1'): SnapshotReading => ({
  snapshotId,
  state,
  progress,
  startTime: start,
});
const wait = (readings: SnapshotReading[], nowSeconds: number, last?: ReturnType<typeof memoryOf>) =>
  nextPollSeconds(readings, bounds, { now: at(nowSeconds), since: start, ...(last ? { last } : {}) });

describe('the next wait', () => {
  test('a snapshot at 0 % right after it started: the shortest wait', () => {
    expect(wait([reading('0%')], 5)).toBe(30);
  });

  test('a snapshot still at 0 % has no rate yet: it waits half as long again as it has run', () => {
    expect(wait([reading('0%')], 200)).toBe(300);
  });

  test('at 50 % after 10 minutes: 10 more minutes', () => {
    expect(wait([reading('50%')], 600)).toBe(600);
  });

  test('at 99 %, as a multi-volume set sits until its last snapshot is done: the shortest wait', () => {
    expect(wait([reading('99%')], 600)).toBe(30);
    // After an hour at 99 %, 1 % more is 37 s by the average rate.
    expect(wait([reading('99%')], 3_600)).toBe(37);
    expect(wait([reading('100%')], 3_600)).toBe(30);
  });

  test('a long way to go waits no longer than the snapshot has run, nor than the longest wait', () => {
    expect(wait([reading('1%')], 120)).toBe(120);
    expect(wait([reading('1%')], 7_200)).toBe(1800);
    expect(wait([reading('0%')], 7_200)).toBe(1800);
  });

  test('the set waits for its slowest snapshot; a completed one does not count', () => {
    const set = [
      reading('100%', 'completed', 'snap-1'),
      reading('50%', 'pending', 'snap-2'),
      reading('80%', 'pending', 'snap-3'),
    ];
    expect(wait(set, 600)).toBe(600);
  });

  test('a snapshot not visible yet counts from the set start, at 0 %', () => {
    expect(nextPollSeconds([{ snapshotId: 'snap-1' }], bounds, { now: at(90), since: start })).toBe(135);
  });

  test('a snapshot that moved since the last poll is predicted from its current rate, not its slow start', () => {
    // 40 % in its first 540 s, then 20 % in the 60 s since the last poll: 40 % left is 120 s.
    const last = memoryOf([reading('40%')], at(540));
    expect(wait([reading('60%')], 600, last)).toBe(120);
    // From StartTime alone it would have been 600 × 40 / 60 = 400 s.
    expect(wait([reading('60%')], 600)).toBe(400);
  });

  test('one that left 0 % since the last poll is taken to have started halfway between the polls', () => {
    // 0 % at 240 s, 20 % at 300 s: 20 % in about 30 s, 80 % left is 120 s.
    expect(wait([reading('20%')], 300, memoryOf([reading('0%')], at(240)))).toBe(120);
  });

  test('a snapshot that did not move since the last poll falls back to its average since StartTime', () => {
    const last = memoryOf([reading('75%')], at(300));
    expect(wait([reading('75%')], 600, last)).toBe(200);
  });

  test('every set completed: the shortest wait (the loop ends anyway)', () => {
    expect(wait([reading('100%', 'completed')], 600)).toBe(30);
  });

  test('never below the floor nor above the cap, always whole seconds', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            percent: fc.integer({ min: 0, max: 100 }),
            state: fc.constantFrom(...awsFacts.snapshotProgress.states),
            startedBefore: fc.integer({ min: 0, max: 48 * 3_600 }),
          }),
          { minLength: 1, maxLength: 5 },
        ),
        fc.option(fc.integer({ min: 0, max: 100 })),
        (snapshots, lastPercent) => {
          const now = at(48 * 3_600);
          const readings = snapshots.map((s, i) => ({
            snapshotId: `snap-${i}`,
            state: s.state,
            progress: `${s.percent}%`,
            startTime: new Date(now.getTime() - s.startedBefore * 1000),
          }));
          const last =
            lastPercent === null
              ? undefined
              : {
                  at: at(48 * 3_600 - 60).toISOString(),
                  seen: readings.map((r) => ({ snapshotId: r.snapshotId, percent: lastPercent })),
                };
          const seconds = nextPollSeconds(readings, bounds, { now, since: start, ...(last ? { last } : {}) });
          expect(Number.isInteger(seconds)).toBe(true);
          expect(seconds).toBeGreaterThanOrEqual(bounds.firstPollSeconds);
          expect(seconds).toBeLessThanOrEqual(bounds.maxPollSeconds);
        },
      ),
    );
  });

  test("EC2's Progress strings read as whole percentages; anything else is 0", () => {
    for (const progress of ['0%', '42%', '100%']) expect(progress).toMatch(awsFacts.snapshotProgress.format);
    expect([
      percentOf('42%'),
      percentOf('100%'),
      percentOf(undefined),
      percentOf(''),
      percentOf('soon'),
    ]).toEqual([42, 100, 0, 0, 0]);
  });
});

describe('one poll of a set', () => {
  const ec2 = mockClient(EC2Client);
  const client = new EC2Client({ region: 'us-east-1' });
  const set = {
    snapshots: [
      { snapshotId: 'snap-1', volumeId: 'vol-1', state: 'pending' },
      { snapshotId: 'snap-2', volumeId: 'vol-2', state: 'pending' },
    ],
    createdAt: start.toISOString(),
  };
  const settings = { ...bounds, snapshotHours: 24 };

  test('reads Progress and StartTime from DescribeSnapshots and keeps what it saw for the next poll', async () => {
    ec2.reset();
    ec2.on(DescribeSnapshotsCommand).resolves({
      Snapshots: [
        { SnapshotId: 'snap-1', State: 'pending', Progress: '50%', StartTime: start },
        { SnapshotId: 'snap-2', State: 'pending', Progress: '99%', StartTime: start },
      ],
    });
    const first = await checkSnapshotSet(client, { set, attempt: 0, settings, now: at(600) });
    expect(first).toMatchObject({ completed: false, attempt: 1, waitSeconds: 600, progress: '50%' });
    expect(first.seen).toEqual([
      { snapshotId: 'snap-1', percent: 50 },
      { snapshotId: 'snap-2', percent: 99 },
    ]);
    ec2.on(DescribeSnapshotsCommand).resolves({
      Snapshots: [
        { SnapshotId: 'snap-1', State: 'pending', Progress: '90%', StartTime: start },
        { SnapshotId: 'snap-2', State: 'pending', Progress: '99%', StartTime: start },
      ],
    });
    // 40 % in the last 300 s: 10 % left is 75 s.
    const second = await checkSnapshotSet(client, {
      set,
      attempt: 1,
      settings,
      now: at(900),
      last: first,
    });
    expect(second).toMatchObject({ completed: false, attempt: 2, waitSeconds: 75 });
  });

  test('a snapshot in error fails the poll rather than choosing a wait', async () => {
    ec2.reset();
    ec2.on(DescribeSnapshotsCommand).resolves({
      Snapshots: [
        { SnapshotId: 'snap-1', State: 'pending', Progress: '50%', StartTime: start },
        { SnapshotId: 'snap-2', VolumeId: 'vol-2', State: 'error', Progress: '12%', StartTime: start },
      ],
    });
    await expect(checkSnapshotSet(client, { set, attempt: 0, settings, now: at(60) })).rejects.toMatchObject({
      name: 'SnapshotFailedError',
    });
  });
});
