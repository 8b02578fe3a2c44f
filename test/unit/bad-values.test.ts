/**
 * Values that pass their patterns but would do harm: a maximum duration past
 * what a timer holds, and a WAL object crafted to decompress without bound.
 */
import { describe, expect, test } from 'vitest';
import { UsageError } from '#domain/errors';
import { CorruptObjectError } from '#domain/repository/errors';
import { decodeWalObject, encodeWalObject, zstdDecodedBound } from '#domain/repository/wal-object';
import { parseBeginOptions } from '../../agent/cli/begin-options.ts';

describe('--max-duration', () => {
  test('above what a Node.js timer holds (24.8 days) is refused, saying why, rather than expiring at once', () => {
    expect(parseBeginOptions({ label: 'x', 'max-duration': '24d' }).maxDurationMs).toBe(24 * 86_400_000);
    for (const text of ['25d', '600h', '99999d']) {
      expect(() => parseBeginOptions({ label: 'x', 'max-duration': text })).toThrow(UsageError);
      expect(() => parseBeginOptions({ label: 'x', 'max-duration': text })).toThrow(
        /longer than pgsnap can time/,
      );
    }
  });
});

/**
 * A zstd frame of `blocks` RLE blocks of 128 KiB each: 4 bytes a block, 128 KiB of zeros out; with
 * `contentSize`, a frame that says it holds that many bytes.
 */
function rleBomb(blocks: number, contentSize?: number): Buffer {
  // magic, descriptor (a 4-byte Frame_Content_Size, or none), window 8 MiB
  const frame = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, contentSize === undefined ? 0x00 : 0x80, 0x58])];
  if (contentSize !== undefined) {
    frame.push(Buffer.alloc(4));
    frame[1]!.writeUInt32LE(contentSize);
  }
  for (let i = 0; i < blocks; i++) {
    const header = ((128 << 10) << 3) | (1 << 1) | (i === blocks - 1 ? 1 : 0);
    frame.push(Buffer.from([header & 0xff, (header >> 8) & 0xff, (header >> 16) & 0xff, 0x00]));
  }
  return Buffer.concat(frame);
}

/** A pgsnap WAL object whose header tells the truth about everything but what the frames decompress to. */
async function craftedObject(name: string, payload: Buffer, bytes: number): Promise<Buffer> {
  const honest = await encodeWalObject(name, Buffer.alloc(1));
  const headerLength = honest.readUInt32LE(4);
  const header = JSON.parse(honest.subarray(8, 8 + headerLength).toString('utf8'));
  const forged = Buffer.from(JSON.stringify({ ...header, bytes, compressedBytes: payload.length }));
  const frame = Buffer.alloc(8);
  frame.writeUInt32LE(honest.readUInt32LE(0), 0);
  frame.writeUInt32LE(forged.length, 4);
  return Buffer.concat([frame, forged, payload]);
}

describe('a WAL object is never decompressed past the segment size', () => {
  const name = '000000010000000000000001';
  const segmentSize = 16 << 20;

  test("pgsnap's own objects: the bound read from their blocks is their size exactly", async () => {
    const content = Buffer.alloc(segmentSize, 7);
    content.write('not all the same', 1000);
    const object = await encodeWalObject(name, content);
    const start = 8 + object.readUInt32LE(4);
    expect(zstdDecodedBound(object.subarray(start))).toBe(segmentSize);
    expect((await decodeWalObject(name, object, 'the object', segmentSize)).content.equals(content)).toBe(
      true,
    );
  });

  test('a crafted object that would decompress to 8 GiB is refused before it is decompressed', async () => {
    const bomb = rleBomb(65_536); // 256 KiB stored, 8 GiB out
    expect(zstdDecodedBound(bomb)).toBe(65_536 * (128 << 10));
    const object = await craftedObject(name, bomb, segmentSize);
    const decoding = decodeWalObject(name, object, 'the object', segmentSize);
    await expect(decoding).rejects.toThrow(CorruptObjectError);
    await expect(decodeWalObject(name, object, 'the object', segmentSize)).rejects.toThrow(
      /would decompress to up to 8589934592 bytes, more than a WAL file of this cluster can be/,
    );
  });

  test('a frame that says its content size is bounded by it: blocks split below 128 KiB do not count as full', () => {
    // 200 RLE blocks of 128 KiB would be 25 MiB; the frame says 16 MiB, and libzstd decodes no more than that.
    expect(zstdDecodedBound(rleBomb(200, segmentSize))).toBe(segmentSize);
    expect(zstdDecodedBound(rleBomb(2, segmentSize))).toBe(2 * (128 << 10));
  });

  test('a crafted object whose frame says less than its blocks make is refused as corrupt when decoded', async () => {
    const object = await craftedObject(name, rleBomb(1024, segmentSize), segmentSize); // 128 MiB out
    await expect(decodeWalObject(name, object, 'the object', segmentSize)).rejects.toThrow(
      /the object does not decompress/,
    );
  });

  test('a header claiming more than a segment is refused', async () => {
    const object = await craftedObject(name, rleBomb(1), 2 * segmentSize);
    await expect(decodeWalObject(name, object, 'the object', segmentSize)).rejects.toThrow(
      /says it holds 33554432 bytes, more than a WAL file of this cluster can be/,
    );
  });
});
