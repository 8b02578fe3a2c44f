/**
 * What a test makes for itself — a cluster, a restored copy of it, a
 * repository, a temp directory — cleaned up when the test finishes, also when
 * it fails, with onTestFinished. vitest runs a test's onTestFinished callbacks
 * one after another in reverse order of registration (vitest 4 always does,
 * whatever `sequence.hooks` says: @vitest/runner calls them as a "stack"), so
 * what a test makes later is cleaned up first: a restored copy before its
 * source, a cluster before its repository.
 *
 * Kept apart from cluster.ts and repository.ts, which the benchmarks import
 * outside vitest.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { Cluster, type ClusterOptions } from './cluster.ts';
import { type BackendKind, type TestRepository, testRepository } from './repository.ts';
import type { LocalS3 } from './s3.ts';
import { stopWalHelpers } from './wal-helpers.ts';

export interface TestCluster {
  cluster: Cluster;
  /** libpq settings for the cluster, and a state directory of the test's own. */
  env: NodeJS.ProcessEnv;
  stateDir: string;
}

/**
 * The server first, so that its archive_command or restore_command starts no
 * new helper; then the WAL helpers it started (pid files under its directory),
 * so that none writes into a directory being removed.
 */
async function stopWithHelpers(cluster: Cluster): Promise<void> {
  cluster.stopSync('immediate');
  await stopWalHelpers(cluster.root);
}

/**
 * A throwaway cluster and pgsnap state directory. When the test finishes: the
 * server stopped, then its WAL helpers, then its directory and the state
 * directory removed.
 */
export async function clusterForTest(options: ClusterOptions = {}): Promise<TestCluster> {
  const stateDir = mkdtempSync(join(tmpdir(), 'pgsnap-state-'));
  onTestFinished(() => rmSync(stateDir, { recursive: true, force: true }));
  const cluster = await Cluster.create(options);
  onTestFinished(async () => {
    await stopWithHelpers(cluster);
    cluster.destroy();
  });
  return { cluster, env: { ...cluster.env, PGSNAP_STATE_DIR: stateDir }, stateDir };
}

/**
 * A copied data directory restored as a cluster (Cluster.fromCopy). When the
 * test finishes: the server stopped, then the WAL helpers under its root. Its
 * root is not removed: it is a directory the test made inside the source
 * cluster's, removed with it after every copy restored there is stopped (two
 * copies may share a root).
 */
export async function restoredClusterForTest(copy: Parameters<typeof Cluster.fromCopy>[0]): Promise<Cluster> {
  const restored = await Cluster.fromCopy(copy);
  onTestFinished(() => stopWithHelpers(restored));
  return restored;
}

/** testRepository, removed when the test finishes (after the clusters made since, which archive into it). */
export function repositoryForTest(kind: BackendKind, s3?: LocalS3, cluster?: string): TestRepository {
  const repo = testRepository(kind, s3, cluster);
  onTestFinished(() => repo.destroy());
  return repo;
}

/** A temp directory, removed when the test finishes. */
export function tempDirForTest(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
