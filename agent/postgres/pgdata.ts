/**
 * What the data directory says about its cluster, read from files, without a
 * database connection: archive_command and restore_command run in the data
 * directory, and must work while the server cannot take connections (during
 * recovery, or with max_connections reached).
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterIdentity } from '#domain/repository/cluster-pin';
import { readSegmentHeader, walFileKind } from '#domain/wal/file';

function readHead(path: string, bytes: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(bytes);
    const read = readSync(fd, buffer, 0, bytes, 0);
    return buffer.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}

/** ControlFileData begins with system_identifier (uint64, native order; little-endian here). */
export function systemIdentifierOf(pgdata: string): string {
  const head = readHead(join(pgdata, 'global', 'pg_control'), 8);
  if (head.length < 8) throw new Error(`${join(pgdata, 'global', 'pg_control')} is truncated`);
  return head.readBigUInt64LE(0).toString();
}

export function pgVersionOf(pgdata: string): string | undefined {
  try {
    return readFileSync(join(pgdata, 'PG_VERSION'), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The WAL directory: pg_wal since 10, pg_xlog before. */
export function walDirectoryOf(pgdata: string): string {
  const version = pgVersionOf(pgdata);
  return version?.startsWith('9.') ? join(pgdata, 'pg_xlog') : join(pgdata, 'pg_wal');
}

/**
 * The identity of the cluster in `pgdata`: its system identifier from
 * pg_control, its segment size from the header of a segment in pg_wal.
 */
export function dataDirectoryIdentity(pgdata: string): ClusterIdentity {
  const systemIdentifier = systemIdentifierOf(pgdata);
  const walDir = walDirectoryOf(pgdata);
  const segment = readdirSync(walDir).find((name) => walFileKind(name) === 'segment');
  const header = segment ? readSegmentHeader(readHead(join(walDir, segment), 40)) : undefined;
  if (!header) throw new Error(`no WAL segment with a readable header in ${walDir}`);
  const pgVersion = pgVersionOf(pgdata);
  return { systemIdentifier, walSegmentSize: header.segmentSize, ...(pgVersion ? { pgVersion } : {}) };
}
