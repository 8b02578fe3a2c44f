/**
 * Recovering a backup from its local snapshots on this host, beside its
 * source: each snapshot cloned into a scratch place, the data directory
 * prepared from the repository's artifacts with a WAL directory of its own,
 * and a throwaway server recovering it. Shared by `pgsnap drill` and the demo.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PreconditionError, RecoveryTargetNotReachedError } from '#domain/errors';
import type { Manifest, ManifestSnapshot } from '#domain/repository/manifest';
import type { RepositoryChoice } from '../host/repository.ts';
import { selfCommand } from '../host/self.ts';
import { writeOwnedFile } from '../postgres/owned-paths.ts';
import { primarySettingsOf } from '../postgres/pgdata.ts';
import type { SnapshotProvider } from '../providers/provider.ts';
import { walFetchLine } from '../wal/shell-lines.ts';
import { Cluster, ownedDir, serverUid } from './cluster.ts';
import { prepareDataDirectory, type RecoveryTarget } from './prepare.ts';
import { failureInLog } from './restored-server.ts';
import { requireServerCanRun } from './server-can-run.ts';
import { requireBackupSnapshot } from './snapshot-check.ts';

export interface RecoverRequest {
  manifest: Manifest;
  label: { text: string; sha256: string };
  map?: { text: string; sha256: string };
  provider: SnapshotProvider;
  snapshots: ManifestSnapshot[];
  repository: RepositoryChoice;
  target: RecoveryTarget;
  /** A scratch directory the server's user can reach. */
  work: string;
  /** Tells several recoveries in one scratch directory apart. */
  name: string;
  /** pgsnap as the restored server's restore_command runs it (default: this one, selfCommand). */
  pgsnap?: string[];
  /** Keep what was restored when recovery fails (the server stopped), for the operator to look into. */
  keep?: boolean;
}

export interface Recovered {
  cluster: Cluster;
  /** The restored data directory. */
  pgdata: string;
  restoreMs: number;
  /** Stops the server and removes everything the recovery made. */
  discard(): Promise<void>;
}

export async function recoverFromSnapshots(request: RecoverRequest): Promise<Recovered> {
  const { provider, work, name } = request;
  const { backupId } = request.manifest;
  const started = Date.now();
  const made: string[] = [];
  let cluster: Cluster | undefined;
  let pgdata: string | undefined;
  const discard = async () => {
    cluster?.stopSync('immediate');
    for (const target of made.reverse()) await provider.discard(target);
  };
  try {
    const targets = new Map<string, string>();
    for (const snapshot of request.snapshots) {
      const role = snapshot.role ?? 'data';
      const key = role === 'tablespace' ? `tablespace-${snapshot.tablespaceOid}` : role;
      const volume = { role, source: snapshot.path ?? '', snapshot: snapshot.snapshotId };
      const target = provider.scratchTarget(volume, work, `${backupId}-${name}-${key}`);
      await provider.restore(volume, target);
      made.push(target);
      targets.set(key, target);
    }
    pgdata = targets.get('data');
    if (!pgdata) throw new PreconditionError(`backup ${backupId} has no snapshot of its data directory`);
    requireBackupSnapshot(pgdata, request.manifest);
    const tablespaces = Object.fromEntries(
      request.snapshots
        .filter((s) => s.role === 'tablespace')
        .map((s) => [s.tablespaceOid!, targets.get(`tablespace-${s.tablespaceOid}`)!]),
    );
    const pgsnap = request.pgsnap ?? selfCommand();
    requireServerCanRun(pgsnap, serverUid(), 'restore_command');
    const walDir = targets.get('wal') ?? join(work, `${name}-pg_wal`);
    if (!targets.has('wal')) made.push(walDir);
    prepareDataDirectory({
      pgdata,
      backupLabel: request.label.text,
      expectedSha256: {
        backupLabel: request.label.sha256,
        ...(request.map ? { tablespaceMap: request.map.sha256 } : {}),
      },
      ...(request.map ? { tablespaceMap: request.map.text, tablespaces } : {}),
      // Never the source's WAL: the restored WAL volume if there is one, else a fresh directory.
      walDir,
      restoreCommand: walFetchLine(request.repository.url, request.repository.cluster, undefined, pgsnap),
      target: request.target,
      targetAction: 'promote',
    });
    const major = Number(readFileSync(join(pgdata, 'PG_VERSION'), 'utf8').trim());
    const root = ownedDir(join(work, `${name}-server`));
    // The source's pg_hba.conf may refuse us (peer auth from root): its own, trust on a socket in a 0700 directory.
    const hbaFile = join(root, 'pg_hba.conf');
    writeOwnedFile(hbaFile, 'local all all trust\n', 0o600, statSync(root));
    cluster = await Cluster.create({
      major,
      root,
      dataDir: pgdata,
      archiveDir: ownedDir(join(work, `${name}-unused-archive`)),
      commandLine: {
        // Hot standby needs these at least as high as the primary had them, or recovery aborts
        // ("insufficient parameter settings"); pg_control has the primary's.
        ...Object.fromEntries(Object.entries(primarySettingsOf(pgdata)).map(([k, v]) => [k, String(v)])),
        hba_file: hbaFile,
        listen_addresses: '',
        // Everything into pg_ctl's log, whatever the source's postgresql.conf says, to read why recovery failed.
        logging_collector: 'off',
        log_destination: 'stderr',
        // Never into the source's repository: a promoted copy archives a timeline of its own.
        archive_mode: 'off',
      },
    });
    await cluster.waitForPromotion(600_000);
    return { cluster, pgdata, restoreMs: Date.now() - started, discard };
  } catch (error) {
    cluster?.stopSync('immediate');
    const log = join(work, `${name}-server`, 'server.log');
    const reason = existsSync(log) ? failureInLog(readFileSync(log, 'utf8')) : undefined;
    const kept = request.keep && pgdata !== undefined;
    if (!kept) await discard();
    const keptWhat = kept ? `. Kept the restored data directory ${pgdata} and the server's log ${log}` : '';
    if (!reason) {
      if (error instanceof Error) error.message += keptWhat;
      throw error;
    }
    throw new RecoveryTargetNotReachedError(
      `the throwaway server recovering backup ${backupId} stopped; its log says: ${reason}${keptWhat}`,
      { cause: error },
    );
  }
}
