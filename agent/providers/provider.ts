/**
 * Snapshot providers: how the files of a cluster are captured inside one
 * backup session, and how a snapshot becomes a directory again for a restore.
 * Inside backup mode the snapshots of several volumes need not be
 * simultaneous (archive base backups are "immune to file system changes",
 * docs), except for a standby's pg_control (research notes §3).
 */
import type { ClusterPath } from '../volumes/cluster-paths.ts';

export interface VolumeSnapshot {
  role: ClusterPath['role'];
  /** The path that was captured. */
  source: string;
  oid?: string;
  /** What the provider needs to find the snapshot again: a directory, a subvolume, an id. */
  snapshot: string;
}

export interface SnapshotProvider {
  readonly name: string;
  /** Captures every path; on failure, whatever was already captured is removed before the error is thrown. */
  snapshot(backupId: string, paths: ClusterPath[]): Promise<VolumeSnapshot[]>;
  /** Materializes one snapshot at `target` (which must not exist yet). */
  restore(snapshot: VolumeSnapshot, target: string): Promise<void>;
  /**
   * Where a drill may materialize `snapshot` as `name`: inside `workDir`, or,
   * for a provider that can only clone on the snapshot's own file system, beside it.
   */
  scratchTarget(snapshot: VolumeSnapshot, workDir: string, name: string): string;
  /** Removes what `restore` made at `target`. */
  discard(target: string): Promise<void>;
  delete(snapshots: VolumeSnapshot[]): Promise<void>;
}
