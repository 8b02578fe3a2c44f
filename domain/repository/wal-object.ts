/**
 * How one archived WAL file is stored: a zstd skippable frame holding
 * pgsnap's header (name, sha256 and size of the original, size of the
 * compressed part), followed by the zstd-compressed file.
 *
 * The checksum travels inside the object, so it is the same in a bucket and in
 * a directory, survives any copy between them, and is verified on every fetch.
 * Decoders skip skippable frames (RFC 8878 §3.1.2), so `zstd -d` restores the
 * original file without pgsnap.
 */
import { createHash } from 'node:crypto';
import * as z from '../zod.ts';
import { CorruptObjectError } from './errors.ts';
import { zstdCodec } from './zstd.ts';

export const walCodecs = ['zstd'] as const;
export type WalCodec = (typeof walCodecs)[number];
export const walExtension: Record<WalCodec, string> = { zstd: 'zst' };

/** Skippable frame magic 0x184D2A50 + 0x0E: any of the 16 values is skipped by zstd decoders. */
const skippableMagic = 0x184d2a5e;

const headerSchema = z.strictObject({
  format: z.literal('pgsnap-wal'),
  version: z.literal(1),
  name: z.string(),
  codec: z.enum(walCodecs),
  sha256: z.string().check(z.regex(/^[0-9a-f]{64}$/)),
  bytes: z.int().check(z.nonnegative()),
  compressedBytes: z.int().check(z.nonnegative()),
});

export type WalObjectHeader = z.infer<typeof headerSchema>;

/**
 * zstd's level 1. On real segments it compressed 1.5 to 2.4 times faster than
 * level 3 at a ratio within 10 % (better on some): the pusher shares the
 * database's cores, and its time per segment is what the archiver waits for.
 */
export const zstdLevel = 1;

export function sha256(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

export async function encodeWalObject(name: string, content: Buffer): Promise<Buffer> {
  // The codec works in libuv's thread pool: the checksum is computed meanwhile, on this thread.
  const compressing = zstdCodec().compress(content, zstdLevel);
  const checksum = sha256(content);
  const compressed = await compressing;
  const header: WalObjectHeader = {
    format: 'pgsnap-wal',
    version: 1,
    name,
    codec: 'zstd',
    sha256: checksum,
    bytes: content.length,
    compressedBytes: compressed.length,
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const frame = Buffer.alloc(8);
  frame.writeUInt32LE(skippableMagic, 0);
  frame.writeUInt32LE(headerBytes.length, 4);
  return Buffer.concat([frame, headerBytes, compressed]);
}

/** Reads the header only; `where` names the object in messages. */
export function readWalObjectHeader(object: Buffer, where: string): WalObjectHeader {
  if (object.length < 8 || object.readUInt32LE(0) !== skippableMagic) {
    throw new CorruptObjectError(`${where} is not a pgsnap WAL object (no pgsnap header)`);
  }
  const length = object.readUInt32LE(4);
  if (object.length < 8 + length) {
    throw new CorruptObjectError(`${where} is truncated: it ends inside its header`);
  }
  let header: unknown;
  try {
    header = JSON.parse(object.subarray(8, 8 + length).toString('utf8'));
  } catch {
    throw new CorruptObjectError(`${where} has an unreadable pgsnap header`);
  }
  const parsed = headerSchema.safeParse(header);
  if (!parsed.success) {
    throw new CorruptObjectError(`${where} has an invalid pgsnap header: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

/** PostgreSQL's largest wal_segment_size (initdb --wal-segsize 1024): no WAL file is larger. */
export const largestWalFileBytes = 1 << 30;

/** A zstd block never decompresses to more than this (RFC 8878 §3.1.1.2.3, Block_Maximum_Size). */
const zstdBlockMaximum = 128 << 10;

/**
 * The most that zstd frames can decompress to, read from their headers
 * without decompressing (RFC 8878 §3.1.1): a raw or RLE block says its size, a
 * compressed one makes at most Block_Maximum_Size, and a frame that records
 * its Frame_Content_Size makes no more than that, since libzstd refuses a
 * frame that decodes to more than it says (node:zlib is also given the size
 * as maxOutputLength; the native binding sizes its output by it: a forged
 * frame of 8 GiB in RLE blocks that says 16 MiB took 50 MB there, and failed). libzstd
 * 1.5.7 (node:zlib in Node.js 24) splits blocks below 128 KiB, so for its
 * frames the content size is what bounds them; the older encoder fills its
 * blocks. For pgsnap's objects this is the size of the file exactly; for a
 * crafted one (a million RLE blocks of 128 KiB from 4 bytes each) it is what
 * the decoder would allocate, which is then refused before any of it is.
 * Undefined for what is not a sequence of zstd frames.
 */
export function zstdDecodedBound(data: Buffer): number | undefined {
  let at = 0;
  let bound = 0;
  while (at < data.length) {
    if (at + 8 > data.length) return undefined;
    const magic = data.readUInt32LE(at);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      at += 8 + data.readUInt32LE(at + 4);
      continue;
    }
    if (magic !== 0xfd2fb528) return undefined;
    const descriptor = data[at + 4]!;
    const singleSegment = (descriptor >> 5) & 1;
    const checksum = (descriptor >> 2) & 1;
    const contentSizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][descriptor >> 6]!;
    const contentSizeAt = at + 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][descriptor & 3]!;
    if (contentSizeAt + contentSizeBytes > data.length) return undefined;
    // A 2-byte Frame_Content_Size is stored minus 256 (RFC 8878 §3.1.1.1.4).
    const contentSize =
      contentSizeBytes === 0
        ? undefined
        : contentSizeBytes === 8
          ? Number(data.readBigUInt64LE(contentSizeAt))
          : data.readUIntLE(contentSizeAt, contentSizeBytes) + (contentSizeBytes === 2 ? 256 : 0);
    at = contentSizeAt + contentSizeBytes;
    let blocks = 0;
    for (let last = false; !last; ) {
      if (at + 3 > data.length) return undefined;
      const block = data.readUIntLE(at, 3);
      last = (block & 1) === 1;
      const type = (block >> 1) & 3;
      const size = block >>> 3;
      if (type === 3) return undefined; // reserved
      blocks += type === 2 ? zstdBlockMaximum : size;
      at += 3 + (type === 1 ? 1 : size);
    }
    bound += contentSize === undefined ? blocks : Math.min(contentSize, blocks);
    if (checksum) at += 4;
  }
  return at === data.length ? bound : undefined;
}

/**
 * Decompresses and verifies an object: its size, its checksum, and that it
 * holds the file asked for. It is never decompressed to more than `maxBytes`
 * (the cluster's segment size; by default the largest PostgreSQL allows): a
 * crafted object could otherwise decompress without bound and exhaust the
 * host's memory.
 */
export async function decodeWalObject(
  name: string,
  object: Buffer,
  where: string,
  maxBytes = largestWalFileBytes,
): Promise<{ content: Buffer; header: WalObjectHeader }> {
  const header = readWalObjectHeader(object, where);
  if (header.bytes > maxBytes) {
    throw new CorruptObjectError(
      `${where} says it holds ${header.bytes} bytes, more than a WAL file of this cluster can be ` +
        `(${maxBytes}); it was not written by pgsnap for this cluster`,
    );
  }
  const start = 8 + object.readUInt32LE(4);
  const compressedLength = object.length - start;
  if (compressedLength !== header.compressedBytes) {
    throw new CorruptObjectError(
      `${where} is ${compressedLength < header.compressedBytes ? 'truncated' : 'longer than written'}: ` +
        `${compressedLength} compressed bytes, its header says ${header.compressedBytes}`,
    );
  }
  if (header.name !== name) {
    throw new CorruptObjectError(
      `${where} holds ${header.name}, not ${name}: it was copied over another file`,
    );
  }
  const bound = zstdDecodedBound(object.subarray(start));
  if (bound === undefined || bound > maxBytes + zstdBlockMaximum) {
    throw new CorruptObjectError(
      bound === undefined
        ? `${where} does not hold zstd frames after its header`
        : `${where} would decompress to up to ${bound} bytes, more than a WAL file of this cluster can be ` +
            `(${maxBytes}); not decompressed`,
    );
  }
  let content: Buffer;
  try {
    content = await zstdCodec().decompress(object.subarray(start), Math.max(header.bytes, 1));
  } catch (error) {
    throw new CorruptObjectError(`${where} does not decompress: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const actual = sha256(content);
  if (content.length !== header.bytes || actual !== header.sha256) {
    throw new CorruptObjectError(
      `${where} is corrupt: its content has sha256 ${actual} (${content.length} bytes), ` +
        `but ${header.sha256} (${header.bytes} bytes) was stored`,
    );
  }
  return { content, header };
}
