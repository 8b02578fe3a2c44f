/**
 * The peer of a restore drill: the backup's snapshot directories copied with
 * a plain `cp -a`, then the same recovery the agent runs on a restore's host
 * (agent/restore/restore-on-host.ts): `pgsnap restore` prepares PGDATA from
 * the repository (backup_label and tablespace_map, restore_command pgsnap
 * wal-fetch, the target), the port appended, pg_ctl start, and the same wait
 * for consistency and promotion (waitForRecovery, polling every 500 ms as
 * the host does). Timed per phase.
 */
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { appendOwnedFile } from '../../agent/postgres/owned-paths.ts';
import type { VolumeSnapshot } from '../../agent/providers/provider.ts';
import { ownedDir } from '../../agent/restore/cluster.ts';
import {
  findPgBin,
  type RestoredServer,
  startServer,
  stopServer,
  waitForRecovery,
} from '../../agent/restore/restored-server.ts';
import { onCleanup, run } from './processes.ts';

export interface CopyRestoreTimings {
  /** Epoch ms at the start of each phase's end. */
  startedAt: number;
  copiedAt: number;
  preparedAt: number;
  serverStartedAt: number;
  consistentAt: number;
  promotedAt: number;
  /** Stopping the server and removing the copies. */
  removedMs: number;
  copiedBytes: number;
  /** Where the copies went: the file system they are on. */
  copiedTo: string;
}

export interface CopyRestoreRequest {
  snapshots: VolumeSnapshot[];
  /** Whether the snapshots are btrfs subvolumes: the copies then go on the same file system, without reflinks. */
  btrfs: boolean;
  work: string;
  backupId: string;
  repositoryUrl: string;
  cluster: string;
  agentBinDir: string;
  agentEnv: NodeJS.ProcessEnv;
  port: number;
  progress: (message: string) => void;
}

export async function copyAndRecover(request: CopyRestoreRequest): Promise<CopyRestoreTimings> {
  const { snapshots, work } = request;
  const copies = new Map<string, string>();
  let server: RestoredServer | undefined;
  const remove = async () => {
    if (server) stopServer(server);
    server = undefined;
    for (const path of copies.values()) await run('rm', ['-rf', path], {});
    copies.clear();
  };
  onCleanup(() => {
    if (server) stopServer(server);
  });
  const copyRoot = request.btrfs ? '' : ownedDir(join(work, 'copies'), 0o711);
  const startedAt = Date.now();
  for (const snapshot of snapshots) {
    const key = snapshot.role === 'tablespace' ? `tablespace-${snapshot.oid}` : snapshot.role;
    // Beside the snapshot on btrfs, where the drill's clones are: the same disk; --reflink=never, or cp 9 would clone.
    const target = request.btrfs ? join(dirname(snapshot.snapshot), `copy-${key}`) : join(copyRoot, key);
    copies.set(key, target);
    await run('cp', ['-a', ...(request.btrfs ? ['--reflink=never'] : []), snapshot.snapshot, target], {});
  }
  const copiedAt = Date.now();
  const { stdout } = await run('du', ['-sbc', ...copies.values()], {});
  const copiedBytes = Number(/^(\d+)\ttotal$/m.exec(stdout)?.[1]);
  const { stdout: fs } = await run('findmnt', ['-n', '-o', 'FSTYPE', '--target', copies.get('data')!], {});
  const pgdata = copies.get('data')!;
  try {
    const tablespaces = snapshots
      .filter((s) => s.role === 'tablespace')
      .flatMap((s) => ['--tablespace', `${s.oid}=${copies.get(`tablespace-${s.oid}`)}`]);
    const walDir = copies.get('wal');
    request.progress(`cp -a done (${(copiedBytes / 2 ** 20).toFixed(0)} MiB); pgsnap restore on ${pgdata}`);
    await run(
      join(request.agentBinDir, 'pgsnap'),
      [
        'restore',
        '--backup-id',
        request.backupId,
        '--pgdata',
        pgdata,
        '--repo',
        request.repositoryUrl,
        '--cluster',
        request.cluster,
        ...tablespaces,
        ...(walDir ? ['--waldir', walDir] : []),
        '--target',
        'immediate',
      ],
      request.agentEnv,
    );
    appendOwnedFile(join(pgdata, 'postgresql.auto.conf'), `port = ${request.port}\n`, statSync(pgdata));
    const preparedAt = Date.now();
    server = {
      pgdata,
      control: { pgBin: findPgBin(pgdata, undefined, request.agentEnv) },
      env: { ...request.agentEnv, PGPORT: String(request.port) },
      logFile: join(pgdata, 'log', 'pgsnap-bench.log'),
    };
    startServer(server);
    const serverStartedAt = Date.now();
    const reached = await waitForRecovery(
      server,
      { mode: 'drill' },
      { timeoutMs: 600_000, progress: request.progress },
    );
    const removing = Date.now();
    await remove();
    return {
      startedAt,
      copiedAt,
      preparedAt,
      serverStartedAt,
      consistentAt: Date.parse(reached.consistentAt!),
      promotedAt: Date.parse(reached.targetReachedAt!),
      removedMs: Date.now() - removing,
      copiedBytes,
      copiedTo: fs.trim(),
    };
  } finally {
    await remove();
  }
}
