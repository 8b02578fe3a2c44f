import { describe, expect, it } from 'vitest';
import { WalGapError } from '#domain/errors';
import { Repository } from '#domain/repository/repository';
import { checkWalContinuity } from '#domain/restore/plan';
import { segmentName } from '#domain/wal/file';
import { testManifest } from '../support/manifests.ts';
import { MemoryStore } from '../support/memory-store.ts';

const size = 16 * 1024 * 1024;
const backup = testManifest({
  state: 'completed',
  startWalFile: segmentName(1, 5000n, size),
  stopWalFile: segmentName(1, 5002n, size),
  stopLsn: '13/89000100',
});

/** A repository holding segments `from`..`to` of `timeline` (zstd-compressed names, as the agent stores them). */
function archive(store: MemoryStore, timeline: number, from: bigint, to: bigint, skip: bigint[] = []): void {
  for (let segno = from; segno <= to; segno++) {
    if (!skip.includes(segno))
      store.objects.set(`orders-db/wal/${segmentName(timeline, segno, size)}.zst`, Buffer.alloc(0));
  }
}

describe('the WAL check of a restore request', () => {
  it('lists from the segment before the backup start, not the whole archive, and stops at a later timeline', async () => {
    const store = new MemoryStore();
    archive(store, 1, 0n, 5010n);
    archive(store, 2, 5011n, 5020n);
    const wal = await checkWalContinuity(new Repository(store, 'orders-db'), backup, undefined);
    expect(wal).toEqual({
      first: segmentName(1, 5000n, size),
      last: segmentName(1, 5010n, size),
      stopLsn: '13/89000100',
    });
    expect(store.scans).toHaveLength(1);
    expect(store.scans[0]!.startAfter).toBe(segmentName(1, 4999n, size));
    // 4999.zst sorts after 4999, then 5000..5010, then the first of timeline 2: not the 5,000 before.
    expect(store.scans[0]!.read).toBeLessThanOrEqual(13);
  });

  it('finds a hole after the consistency point when later segments are archived', async () => {
    const store = new MemoryStore();
    archive(store, 1, 4990n, 5010n, [5006n]);
    await expect(checkWalContinuity(new Repository(store, 'orders-db'), backup, undefined)).rejects.toThrow(
      new RegExp(
        `${segmentName(1, 5006n, size)} .*later segments \\(up to ${segmentName(1, 5007n, size)}\\)`,
      ),
    );
  });

  it('refuses a backup whose stop segment is not archived', async () => {
    const store = new MemoryStore();
    archive(store, 1, 5000n, 5001n);
    await expect(
      checkWalContinuity(new Repository(store, 'orders-db'), backup, undefined),
    ).rejects.toBeInstanceOf(WalGapError);
  });

  it('past its time budget, stops once the needed segments are seen and says how far it checked', async () => {
    const store = new MemoryStore();
    archive(store, 1, 5000n, 5100n);
    const wal = await checkWalContinuity(new Repository(store, 'orders-db'), backup, undefined, 0);
    expect(wal.last).toBe(segmentName(1, 5002n, size));
    expect(wal.checkedTo).toBe(segmentName(1, 5002n, size));
  });
});
