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

/** The first `bytes` of global/pg_control (8192 bytes long in every version): the one reader of it. */
function controlFileHead(pgdata: string, bytes: number, atLeast = bytes): { path: string; head: Buffer } {
  const path = join(pgdata, 'global', 'pg_control');
  const head = readHead(path, bytes);
  if (head.length < atLeast) throw new Error(`${path} is truncated`);
  return { path, head };
}

/** ControlFileData begins with system_identifier (uint64, native order; little-endian here). */
export function systemIdentifierOf(pgdata: string): string {
  return controlFileHead(pgdata, 8).head.readBigUInt64LE(0).toString();
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

/** DBState in pg_control.h, as pg_controldata prints it. */
const clusterStates = [
  'starting up',
  'shut down',
  'shut down in recovery',
  'shutting down',
  'in crash recovery',
  'in archive recovery',
  'in production',
];

/**
 * Where pg_control says the cluster is: its state and its latest checkpoint's
 * location, from the start of ControlFileData (system_identifier,
 * pg_control_version, catalog_version_no, state, time, checkPoint), which no
 * version since 9.0 has moved.
 */
export function controlStateOf(pgdata: string): { state: string; checkpointLsn: bigint } {
  const { head } = controlFileHead(pgdata, 40);
  const state = head.readInt32LE(16);
  return { state: clusterStates[state] ?? `unknown state ${state}`, checkpointLsn: head.readBigUInt64LE(32) };
}

/**
 * The settings a server recovering this cluster's WAL with hot standby must
 * have at least as high as its primary had, by their postgresql.conf names.
 */
export interface PrimarySettings {
  max_connections: number;
  max_worker_processes: number;
  max_wal_senders: number;
  max_prepared_transactions: number;
  max_locks_per_transaction: number;
}

/**
 * The primary's settings from pg_control (what pg_controldata prints as
 * "max_connections setting" and so on), read from the file: pg_controldata is
 * not installed everywhere a server is. In ControlFileData (PostgreSQL 10 to
 * 18, src/include/catalog/pg_control.h) the ints wal_level, wal_log_hints,
 * MaxConnections, max_worker_processes, max_wal_senders, max_prepared_xacts,
 * max_locks_per_xact, track_commit_timestamp and maxAlign sit right before
 * floatFormat, the double 1234567.0 that is there to be recognised.
 */
export function primarySettingsOf(pgdata: string): PrimarySettings {
  const { path, head: control } = controlFileHead(pgdata, 512, 0);
  for (let at = 40; at + 8 <= control.length; at += 8) {
    if (control.readDoubleLE(at) !== 1234567.0) continue;
    const int = (back: number) => control.readInt32LE(at - back);
    if (int(4) !== 8 || int(36) < 0 || int(36) > 2) continue; // maxAlign, wal_level
    const settings = {
      max_connections: int(28),
      max_worker_processes: int(24),
      max_wal_senders: int(20),
      max_prepared_transactions: int(16),
      max_locks_per_transaction: int(12),
    };
    if (settings.max_connections > 0 && settings.max_locks_per_transaction > 0) return settings;
  }
  throw new Error(
    `${path} has no settings pgsnap can read: it is not a pg_control of PostgreSQL 10 or later`,
  );
}
