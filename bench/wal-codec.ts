/**
 * bench/wal-codec: which codec, at which level, for archived WAL. Real
 * segments from a pgbench run on PostgreSQL, each compressed and decompressed
 * in this process by every candidate, one after the other, in the same run:
 * - zstd (`@mongodb-js/zstd`, the prebuilt binding wal-push uses) at level 1,
 *   what wal-push uses, and at level 3, zstd's default and what the package's
 *   own wrapper always uses;
 * - gzip level 1 and brotli quality 1 from node:zlib, for comparison;
 * - sha256 alone, which wal-push computes for every file, for scale.
 * Printed: compress and decompress MB/s over all segments, the ratio, and the
 * milliseconds per 16 MiB segment.
 *
 * usage: npx tsx bench/wal-codec.ts [seconds of pgbench=20] [clients=4] [scale=10]
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, brotliDecompressSync, constants, gunzipSync, gzipSync } from 'node:zlib';
import { zstdLevel } from '#domain/repository/wal-object';
import { Cluster, newestAvailableMajor } from '../test/support/cluster.ts';
import { pgbench } from '../test/support/pgbench.ts';
import { loadAverage } from './lib/machine.ts';
import { printAndRecord } from './lib/report.ts';

const seconds = Number(process.argv[2] ?? 20);
const clients = Number(process.argv[3] ?? 4);
const scale = Number(process.argv[4] ?? 10);

interface Codec {
  name: string;
  compress(data: Buffer): Promise<Buffer>;
  decompress(data: Buffer): Promise<Buffer>;
}

const zstd = createRequire(import.meta.url)('@mongodb-js/zstd/bindings.js') as {
  compress(data: Buffer, level: number): Promise<Buffer>;
  decompress(data: Buffer): Promise<Buffer>;
};
const zstdAt = (level: number): Codec => ({
  name: `zstd level ${level}${level === zstdLevel ? ' (wal-push)' : ''}`,
  compress: (data) => zstd.compress(data, level),
  decompress: (data) => zstd.decompress(data),
});
const codecs: Codec[] = [
  zstdAt(1),
  zstdAt(3),
  {
    name: 'gzip level 1',
    compress: async (data) => gzipSync(data, { level: 1 }),
    decompress: async (data) => gunzipSync(data),
  },
  {
    name: 'brotli quality 1',
    compress: async (data) => brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 1 } }),
    decompress: async (data) => brotliDecompressSync(data),
  },
];

async function segmentsOfALoad(): Promise<Buffer[]> {
  const cluster = await Cluster.create({});
  try {
    await pgbench(cluster, ['-i', '-s', String(scale), '-q']);
    await pgbench(cluster, ['-T', String(seconds), '-c', String(clients), '-j', '2', '-n']);
    await cluster.query('SELECT pg_switch_wal()');
    await cluster.query('CHECKPOINT');
    await new Promise((r) => setTimeout(r, 2000));
    return readdirSync(cluster.archiveDir)
      .filter((f) => /^[0-9A-F]{24}$/.test(f))
      .sort()
      .map((f) => readFileSync(join(cluster.archiveDir, f)));
  } finally {
    cluster.stopSync('immediate');
    cluster.destroy();
  }
}

const segments = await segmentsOfALoad();
const total = segments.reduce((sum, s) => sum + s.length, 0);
const mb = total / 1e6;
const loadBefore = loadavg();
const rows: string[] = [];
const time = async (action: () => Promise<unknown>) => {
  const started = performance.now();
  await action();
  return (performance.now() - started) / 1000;
};
for (const codec of codecs) {
  await codec.compress(segments[0]!); // warm up
  const compressed: Buffer[] = [];
  const compressSeconds = await time(async () => {
    for (const segment of segments) compressed.push(await codec.compress(segment));
  });
  const decompressSeconds = await time(async () => {
    for (const [i, object] of compressed.entries()) {
      if (!(await codec.decompress(object)).equals(segments[i]!))
        throw new Error(`${codec.name}: round trip`);
    }
  });
  const stored = compressed.reduce((sum, c) => sum + c.length, 0);
  rows.push(
    [
      codec.name.padEnd(22),
      (mb / compressSeconds).toFixed(0).padStart(12),
      (mb / decompressSeconds).toFixed(0).padStart(14),
      (total / stored).toFixed(1).padStart(6),
      `${((compressSeconds / segments.length) * 1000).toFixed(0)} / ${((decompressSeconds / segments.length) * 1000).toFixed(0)}`.padStart(
        18,
      ),
    ].join(' '),
  );
}
const hashSeconds = await time(async () => {
  for (const segment of segments) createHash('sha256').update(segment).digest();
});
rows.push(
  [
    'sha256 alone'.padEnd(22),
    (mb / hashSeconds).toFixed(0).padStart(12),
    '-'.padStart(14),
    '-'.padStart(6),
    `${((hashSeconds / segments.length) * 1000).toFixed(0)} / -`.padStart(18),
  ].join(' '),
);
const lines = [
  `wal-codec: ${segments.length} segments (${mb.toFixed(0)} MB) of pgbench -T ${seconds} -c ${clients} ` +
    `(scale ${scale}), PostgreSQL ${newestAvailableMajor()}, one after the other in one thread, ${new Date().toISOString()}`,
  `load average (1, 5, 15 min) before ${loadAverage(loadBefore)}, after ${loadAverage()}; 2 CPUs shared with other work`,
  '',
  'codec                  compress MB/s  decompress MB/s  ratio  ms per segment (c / d)',
  ...rows,
];
printAndRecord('wal-codec.txt', lines);
