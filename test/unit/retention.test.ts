/**
 * Retention over random histories of backups, timelines and failures: it never
 * removes WAL or artifacts that a kept backup needs, never leaves a manifest
 * pointing at deleted objects, and never deletes the newest completed backup, a
 * backup in progress, or one with a locked snapshot.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyRetention, planRetention } from '#domain/backup/retention';
import type { Manifest } from '#domain/repository/manifest';
import { Repository } from '#domain/repository/repository';
import { parseSegmentName, segmentName } from '#domain/wal/file';
import { MemoryStore } from '../support/memory-store.ts';

const segmentSize = 16 * 1024 * 1024;
const cluster = 'orders-db';
const day = 86_400_000;

type Event =
  | {
      kind: 'backup';
      state: Manifest['state'];
      walBefore: number;
      daysBefore: number;
      length: number;
      locked: boolean;
    }
  | { kind: 'switch'; walBefore: number };

const eventArb: fc.Arbitrary<Event> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('backup' as const),
      state: fc.constantFrom<Manifest['state']>(
        'completed',
        'completed',
        'completed',
        'failed',
        'aborted',
        'started',
        'stopped',
      ),
      walBefore: fc.integer({ min: 0, max: 4 }),
      daysBefore: fc.integer({ min: 0, max: 6 }),
      length: fc.integer({ min: 0, max: 2 }),
      locked: fc.integer({ min: 0, max: 9 }).map((n) => n < 3),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('switch' as const), walBefore: fc.integer({ min: 0, max: 3 }) }),
  },
);

const policyArb = fc
  .record({
    keepLast: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
    keepDays: fc.option(fc.integer({ min: 1, max: 20 }), { nil: undefined }),
    thin: fc.option(
      fc.record({
        hours: fc.integer({ min: 0, max: 48 }),
        days: fc.integer({ min: 0, max: 7 }),
        weeks: fc.integer({ min: 0, max: 3 }),
        months: fc.integer({ min: 0, max: 2 }),
      }),
      { nil: undefined },
    ),
  })
  .filter((p) => p.keepLast !== undefined || p.keepDays !== undefined || p.thin !== undefined)
  .map((p) => (p.thin && Object.values(p.thin).every((n) => n === 0) ? { ...p, thin: { days: 1 } } : p));

function hex(n: number) {
  return n.toString(16).toUpperCase().padStart(8, '0');
}

/** Builds the repository a history leaves behind: manifests, artifacts, segments on every timeline, .history files. */
function build(events: Event[]) {
  const store = new MemoryStore();
  const manifests: Manifest[] = [];
  const locked = new Set<string>();
  let timeline = 1;
  let segno = 1n;
  let time = Date.parse('2026-01-01T00:00:00Z');
  const wal: string[] = [segmentName(1, 1n, segmentSize)];
  const advance = (n: number) => {
    for (let i = 0; i < n; i++) {
      segno += 1n;
      wal.push(segmentName(timeline, segno, segmentSize));
    }
  };
  events.forEach((event, index) => {
    advance(event.walBefore);
    if (event.kind === 'switch') {
      timeline += 1;
      wal.push(`${hex(timeline)}.history`, segmentName(timeline, segno, segmentSize));
      return;
    }
    time += event.daysBefore * day + 60_000;
    const stamp = new Date(time)
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d{3}/, '');
    const backupId = `${stamp}-${index.toString(16).padStart(6, '0')}`;
    const startWalFile = segmentName(timeline, segno, segmentSize);
    advance(event.length);
    const stopWalFile = segmentName(timeline, segno, segmentSize);
    const history = `${startWalFile}.00000028.backup`;
    wal.push(history);
    const artifacts = [
      { name: 'backup_label', sha256: '0'.repeat(64), bytes: 1 },
      { name: history, sha256: '1'.repeat(64), bytes: 1 },
    ];
    const manifest: Manifest = {
      schemaVersion: 1,
      cluster,
      backupId,
      label: 'prop',
      state: event.state,
      systemIdentifier: '7000000000000000001',
      serverVersion: '15.18',
      backupFrom: 'primary',
      walSegmentSize: segmentSize,
      timeline,
      startLsn: '0/2000028',
      startWalFile,
      stopLsn: '0/2000100',
      stopWalFile,
      stopTimeline: timeline,
      wal: { first: startWalFile, last: stopWalFile },
      artifacts,
      snapshots: [
        { provider: 'copy', snapshotId: `snap-${backupId}`, role: 'data', path: '/pgdata', state: 'taken' },
      ],
      timings: { startedAt: new Date(time).toISOString() },
      host: 'test',
      updatedAt: new Date(time).toISOString(),
    };
    manifests.push(manifest);
    if (event.locked) locked.add(backupId);
    store.objects.set(`${cluster}/backups/${backupId}/manifest.json`, Buffer.from(JSON.stringify(manifest)));
    for (const a of artifacts)
      store.objects.set(`${cluster}/backups/${backupId}/${a.name}`, Buffer.from('x'));
  });
  for (const name of wal) store.objects.set(`${cluster}/wal/${name}.zst`, Buffer.from('w'));
  return { store, manifests, locked, wal: [...new Set(wal)], now: new Date(time + day) };
}

describe('retention over random histories', () => {
  it('keeps everything a kept backup needs and leaves no manifest pointing at deleted objects', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(eventArb, { minLength: 1, maxLength: 14 }),
        policyArb,
        async (events, policy) => {
          const { store, manifests, locked, wal, now } = build(events);
          const repository = new Repository(store, cluster);
          const deletedSnapshots = new Set<string>();
          const dryRun = await applyRetention(repository, {
            policy,
            now,
            dryRun: true,
            deleteSnapshots: async () => ({ locked: [] }),
          });
          expect(store.objects.size).toBeGreaterThan(0);

          const result = await applyRetention(repository, {
            policy,
            now,
            dryRun: false,
            deleteSnapshots: async (m) => {
              if (locked.has(m.backupId)) return { locked: [m.snapshots[0]!.snapshotId] };
              deletedSnapshots.add(m.backupId);
              return { locked: [] };
            },
          });

          const remaining = manifests.filter((m) =>
            store.objects.has(`${cluster}/backups/${m.backupId}/manifest.json`),
          );
          const remainingIds = new Set(remaining.map((m) => m.backupId));
          const completed = manifests.filter((m) => m.state === 'completed');
          // Never deleted: the newest completed backup, backups in progress, backups with a locked snapshot.
          if (completed.length > 0) expect(remainingIds.has(completed.at(-1)!.backupId)).toBe(true);
          for (const m of manifests) {
            if (['started', 'snapshotting', 'stopped'].includes(m.state))
              expect(remainingIds.has(m.backupId)).toBe(true);
            if (locked.has(m.backupId)) expect(remainingIds.has(m.backupId)).toBe(true);
          }
          // No manifest points at a deleted artifact or snapshot.
          for (const m of remaining) {
            for (const a of m.artifacts)
              expect(store.objects.has(`${cluster}/backups/${m.backupId}/${a.name}`)).toBe(true);
            expect(deletedSnapshots.has(m.backupId)).toBe(false);
          }
          // A removed backup is removed whole.
          for (const m of manifests.filter((x) => !remainingIds.has(x.backupId))) {
            expect(
              [...store.objects.keys()].some((k) => k.startsWith(`${cluster}/backups/${m.backupId}/`)),
            ).toBe(false);
          }
          // Every kept backup that can be restored has all WAL from its start onwards, on every timeline.
          const restorable = remaining.filter((m) => m.state !== 'failed' && m.state !== 'aborted');
          if (restorable.length > 0 && completed.length > 0) {
            const from = restorable
              .map((m) => parseSegmentName(m.startWalFile, segmentSize).segno)
              // biome-ignore lint/complexity/useMathMinMax: segment numbers are bigint, which Math.min refuses
              .reduce((a, b) => (a < b ? a : b));
            for (const name of wal) {
              const present = store.objects.has(`${cluster}/wal/${name}.zst`);
              if (name.endsWith('.history')) expect(present, name).toBe(true);
              else if (parseSegmentName(name.slice(0, 24), segmentSize).segno >= from)
                expect(present, name).toBe(true);
            }
          }
          // The dry run named exactly what went, plus what stayed because it was locked.
          expect(dryRun.remove.map((r) => r.backupId).sort()).toEqual(
            [
              ...result.remove.map((r) => r.backupId),
              ...result.lockedSnapshots.map((l) => l.backupId),
            ].sort(),
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('retention decisions', () => {
  const backups = (states: Manifest['state'][]) =>
    states.map((state, i) => {
      const { manifests } = build([
        { kind: 'backup', state, walBefore: 1, daysBefore: 1, length: 0, locked: false },
      ]);
      return {
        ...manifests[0]!,
        backupId: `2026010${i + 1}T000000Z-00000${i}`,
        startWalFile: segmentName(1, BigInt(i * 2 + 2), segmentSize),
        timings: { startedAt: `2026-01-0${i + 1}T00:00:00Z` },
      };
    });

  it('keeps the last N completed, removes older ones and failures before the newest completed, and cuts WAL at the oldest kept start', () => {
    const history = backups(['completed', 'failed', 'completed', 'completed', 'aborted']);
    const wal = [
      '000000010000000000000001',
      '000000010000000000000003',
      '000000010000000000000006',
      '00000002.history',
    ];
    const plan = planRetention({
      backups: history,
      walFiles: wal,
      policy: { keepLast: 2 },
      now: new Date('2026-02-01T00:00:00Z'),
    });
    expect(plan.keep.map((k) => [k.backupId.slice(0, 8), k.reason])).toEqual([
      ['20260103', 'policy'],
      ['20260104', 'newest completed'],
      ['20260105', 'recent failure'],
    ]);
    expect(plan.remove.map((r) => r.backupId.slice(0, 8))).toEqual(['20260101', '20260102']);
    expect(plan.walFrom).toBe('000000010000000000000006');
    expect(plan.removeWal).toEqual(['000000010000000000000001', '000000010000000000000003']);
  });

  it('of two backups started within one second, the newest is the one that started last, whatever their suffixes', () => {
    const [first, second] = backups(['completed', 'completed']);
    // Back-to-back runs: the same second in the backupId, the later one with the smaller random suffix.
    const earlier = {
      ...first!,
      backupId: '20260105T000000Z-ffffff',
      timings: { startedAt: '2026-01-05T00:00:00.100Z' },
    };
    const later = {
      ...second!,
      backupId: '20260105T000000Z-000000',
      timings: { startedAt: '2026-01-05T00:00:00.900Z' },
    };
    const plan = planRetention({
      backups: [earlier, later],
      walFiles: [],
      policy: { keepLast: 1 },
      now: new Date('2026-01-06T00:00:00Z'),
    });
    expect(plan.keep).toEqual([{ backupId: later.backupId, state: 'completed', reason: 'newest completed' }]);
    expect(plan.remove.map((r) => r.backupId)).toEqual([earlier.backupId]);
  });

  it('refuses a policy that keeps nothing in particular', () => {
    expect(() => planRetention({ backups: [], walFiles: [], policy: {}, now: new Date() })).toThrow(
      /--keep-last N, --keep-days D and\/or --thin H,D,W,M/,
    );
  });
});
