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
import { createRequire } from 'node:module';
import { familySync, GLIBC, MUSL } from 'detect-libc';
import * as z from '../zod.ts';
import { CorruptObjectError } from './errors.ts';

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

interface Zstd {
  compress(data: Buffer, level: number): Promise<Buffer>;
  decompress(data: Buffer): Promise<Buffer>;
}

/**
 * zstd's level 1. On real segments it compressed 1.5 to 2.4 times faster than
 * level 3 at a ratio within 10 % (better on some): the pusher shares the
 * database's cores, and its time per segment is what the archiver waits for.
 */
export const zstdLevel = 1;

let zstd: Zstd | undefined;

/**
 * The codec is a native module (prebuilt for Linux, macOS and Windows), loaded
 * on first use only: commands that never touch WAL do not pay for it. Its
 * bindings are called directly: the package's wrapper (1.2.2, pinned) drops
 * the level argument and always compresses at level 3.
 */
function loadZstd(): Zstd {
  if (!zstd) {
    try {
      zstd = createRequire(import.meta.url)(zstdBinding()) as Zstd;
    } catch (error) {
      throw new Error(
        `cannot load the zstd codec (@mongodb-js/zstd): ${(error as Error).message}. ` +
          'Reinstall pgsnap (npm install, or the agent tarball for this platform) so that its prebuilt ' +
          'binary is there.',
        { cause: error },
      );
    }
  }
  return zstd;
}

/**
 * The prebuilt binding for this platform. The package's loader (bindings.js)
 * tells glibc from musl with process.report.getReport(), a whole diagnostic
 * report: 10 ms of every wal-fetch and wal-push start on these machines.
 * detect-libc reads the ELF interpreter of node instead; where it cannot tell,
 * the package's loader decides.
 */
function zstdBinding(): string {
  if (process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64')) {
    const family = familySync();
    if (family === GLIBC) return `@mongodb-js/zstd-linux-${process.arch}-gnu`;
    if (family === MUSL) return `@mongodb-js/zstd-linux-${process.arch}-musl`;
  }
  return '@mongodb-js/zstd/bindings.js';
}

export function sha256(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

export async function encodeWalObject(name: string, content: Buffer): Promise<Buffer> {
  // The codec works in libuv's thread pool: the checksum is computed meanwhile, on this thread.
  const compressing = loadZstd().compress(content, zstdLevel);
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

/** Decompresses and verifies an object: its size, its checksum, and that it holds the file asked for. */
export async function decodeWalObject(
  name: string,
  object: Buffer,
  where: string,
): Promise<{ content: Buffer; header: WalObjectHeader }> {
  const header = readWalObjectHeader(object, where);
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
  let content: Buffer;
  try {
    content = await loadZstd().decompress(object.subarray(start));
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
