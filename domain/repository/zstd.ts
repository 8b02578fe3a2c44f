/**
 * The zstd codec of WAL objects. Node.js has zstd in node:zlib from 22.15 on
 * (the single executables carry Node.js 24): that one is used wherever it is
 * there, so that an installed agent loads no native module. On older Node.js
 * (the project's own Node.js 20, which runs the tests) the prebuilt
 * @mongodb-js/zstd binding is loaded instead. Both are libzstd: their frames
 * differ in what the header records (node:zlib streams, so no content size),
 * but each decodes the other's to the same bytes, which
 * test/integration/wal-codecs.test.ts checks across the two Node.js versions.
 */
import { createRequire } from 'node:module';
import * as zlib from 'node:zlib';
import { familySync, GLIBC, MUSL } from 'detect-libc';

export interface ZstdCodec {
  /** Where the codec comes from, as `pgsnap --version` prints it. */
  readonly source: string;
  compress(data: Buffer, level: number): Promise<Buffer>;
  /** Refuses output larger than `maxBytes` where the codec can tell before it allocates. */
  decompress(data: Buffer, maxBytes: number): Promise<Buffer>;
}

interface NativeZstd {
  compress(data: Buffer, level: number): Promise<Buffer>;
  decompress(data: Buffer): Promise<Buffer>;
}

/** node:zlib's zstd functions, typed here: @types/node 20 does not know them. */
interface ZlibZstd {
  zstdCompress(data: Buffer, options: object, callback: (error: Error | null, result: Buffer) => void): void;
  zstdDecompress(
    data: Buffer,
    options: object,
    callback: (error: Error | null, result: Buffer) => void,
  ): void;
  constants: { ZSTD_c_compressionLevel: number };
}

let codec: ZstdCodec | undefined;

/** The codec of this Node.js, loaded on first use only: commands that never touch WAL do not pay for it. */
export function zstdCodec(): ZstdCodec {
  codec ??= 'zstdCompress' in zlib ? zlibCodec(zlib as unknown as ZlibZstd) : nativeCodec();
  return codec;
}

function zlibCodec(z: ZlibZstd): ZstdCodec {
  const run = (fn: ZlibZstd['zstdCompress'], data: Buffer, options: object) =>
    new Promise<Buffer>((resolve, reject) =>
      fn(data, options, (error, result) => (error ? reject(error) : resolve(result))),
    );
  return {
    source: `node:zlib (libzstd ${process.versions.zstd ?? 'unknown'})`,
    // In libuv's thread pool, as the native binding does. Without the pledged size the asynchronous call
    // leaves Frame_Content_Size out of the frame, which is what bounds a decode (zstdDecodedBound).
    compress: (data, level) =>
      run(z.zstdCompress, data, {
        pledgedSrcSize: data.length,
        params: { [z.constants.ZSTD_c_compressionLevel]: level },
      }),
    decompress: (data, maxBytes) => run(z.zstdDecompress, data, { maxOutputLength: maxBytes }),
  };
}

/**
 * The prebuilt native binding (Linux, macOS and Windows), called directly: the
 * package's wrapper (1.2.2, pinned) drops the level argument and always
 * compresses at level 3.
 */
function nativeCodec(): ZstdCodec {
  let binding: NativeZstd;
  try {
    binding = createRequire(import.meta.url)(nativeBinding()) as NativeZstd;
  } catch (error) {
    throw new Error(
      `cannot load the zstd codec (@mongodb-js/zstd, needed on Node.js ${process.version}, which has no zstd ` +
        `in node:zlib): ${(error as Error).message}. Run npm install so that its prebuilt binary is there, ` +
        'or use Node.js 22.15 or later (or the single executable, dist/pgsnap-linux-*).',
      { cause: error },
    );
  }
  return {
    source: '@mongodb-js/zstd 1.2.2 (native)',
    compress: (data, level) => binding.compress(data, level),
    decompress: (data) => binding.decompress(data),
  };
}

/**
 * The prebuilt binding for this platform. The package's loader (bindings.js)
 * tells glibc from musl with process.report.getReport(), a whole diagnostic
 * report: 10 ms of every wal-fetch and wal-push start on these machines.
 * detect-libc reads the ELF interpreter of node instead; where it cannot tell,
 * the package's loader decides.
 */
function nativeBinding(): string {
  if (process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64')) {
    const family = familySync();
    if (family === GLIBC) return `@mongodb-js/zstd-linux-${process.arch}-gnu`;
    if (family === MUSL) return `@mongodb-js/zstd-linux-${process.arch}-musl`;
  }
  return '@mongodb-js/zstd/bindings.js';
}
