/**
 * The backup a restore benchmark restores, made as `pgsnap demo` makes its
 * own (local/demo/backup.ts, takeBackup): a throwaway cluster whose PGDATA, a
 * tablespace and pg_wal are on three btrfs volumes when the machine allows
 * (else in directories, copied by the copy provider), archiving with the
 * staged agent's wal-push into a file:// repository, pgbench data in the
 * tablespace, and a backup by the synthesized backup state machine run
 * locally, whose LocalEc2 then answers the restore's EC2 calls. Every step
 * registers its undoing with onCleanup.
 */
import { join, resolve } from 'node:path';
import { newBackupId } from '#domain/ids';
import { createProvider } from '../../agent/providers/create.ts';
import type { SnapshotProvider } from '../../agent/providers/provider.ts';
import {
  Cluster,
  clientBin,
  newestAvailableMajor,
  ownedDir,
  serverUid,
} from '../../agent/restore/cluster.ts';
import { waitForArchive } from '../../agent/session/archive-wait.ts';
import { clusterPaths } from '../../agent/volumes/cluster-paths.ts';
import { plainArchiveCommandLine } from '../../agent/wal/shell-lines.ts';
import { type SynthesizedForLocalRun, synthesizeForLocalRun } from '../../infra/local-run/synthesize.ts';
import { BtrfsVolumes, btrfsUnavailable } from '../../local/btrfs-volumes.ts';
import type { LocalEc2 } from '../../local/local-ec2.ts';
import {
  agentOnPath,
  localAgentEnv,
  localHostVolumes,
  localRootDevice,
  stageAgent,
} from '../../local/staged-agent.ts';
import { onCleanup, run, start } from './processes.ts';

/** The host as the local EC2 presents it. */
export const localInstanceId = 'i-0000000000000000a';
export const clusterName = 'bench';

export interface Source {
  provider: SnapshotProvider;
  /** Why there are no btrfs volumes, when there are none. */
  noBtrfs: string | undefined;
  repositoryUrl: string;
  source: Cluster;
  synthesized: SynthesizedForLocalRun;
  backupId: string;
  ec2: LocalEc2;
  agentBinDir: string;
  agentEnv: NodeJS.ProcessEnv;
  /** Bytes in each of the cluster's directories when the backup was taken, by role. */
  sizes: Array<{ role: string; path: string; bytes: number }>;
  /** What loaded the data. */
  load: string;
}

async function du(path: string): Promise<number> {
  const { stdout } = await run('du', ['-sb', path], {});
  return Number(stdout.split('\t')[0]);
}

/** The cluster, its data, and one completed backup of it by the backup state machine; the source is stopped after. */
export async function backUpSource(
  work: string,
  scale: number,
  progress: (message: string) => void,
  signal: AbortSignal,
): Promise<Source> {
  // BENCH_PROVIDER=copy: the copy provider even where btrfs volumes could be made (what a run without root measures).
  const noBtrfs = process.env.BENCH_PROVIDER === 'copy' ? 'BENCH_PROVIDER=copy' : btrfsUnavailable();
  let layout: { dataDir: string; tablespaceDir: string; walDir: string; provider: SnapshotProvider };
  if (noBtrfs === undefined) {
    progress('three btrfs volumes on loop devices: PGDATA, a tablespace, pg_wal');
    const volumes = new BtrfsVolumes(join(work, 'volumes'));
    // Room for the data (about 16 MB per pgbench scale), pgbench's churn during the backup, and the
    // peer's full copy beside the snapshot; the images are sparse files, so room costs nothing unused.
    const volumeMb = Math.max(1024, scale * 100);
    onCleanup(() => volumes.destroy());
    layout = {
      dataDir: volumes.create('pgdata', volumeMb).subvolume,
      tablespaceDir: volumes.create('tablespace', volumeMb).subvolume,
      walDir: volumes.create('pgwal', volumeMb).subvolume,
      provider: await createProvider('btrfs', {}),
    };
  } else {
    progress(`no btrfs volumes (${noBtrfs}): PGDATA, a tablespace and pg_wal in directories, copied`);
    layout = {
      dataDir: join(ownedDir(join(work, 'pgdata')), 'data'),
      tablespaceDir: ownedDir(join(work, 'tablespace')),
      walDir: join(ownedDir(join(work, 'pgwal')), 'wal'),
      provider: await createProvider('copy', { snapshotDir: ownedDir(join(work, 'snapshots')) }),
    };
  }
  const { provider } = layout;
  const repositoryUrl = `file://${ownedDir(join(work, 'repository'), 0o750)}`;
  const agent = stageAgent(
    join(work, 'agent'),
    serverUid(),
    resolve(import.meta.dirname, '../../dist/pgsnap-agent.tar.gz'),
  );
  const walPush = plainArchiveCommandLine({ url: repositoryUrl, cluster: clusterName, pgsnap: agent });
  const major = newestAvailableMajor();
  progress(`PostgreSQL ${major}, archiving with pgsnap wal-push into ${repositoryUrl}`);
  const source = await Cluster.create({
    major,
    root: ownedDir(join(work, 'source')),
    initdbAt: { dataDir: layout.dataDir, walDir: layout.walDir },
    settings: { archive_command: `'${walPush.replaceAll("'", "''")}'`, max_wal_size: "'256MB'" },
  });
  onCleanup(() => source.stopSync('immediate'));
  await source.query(`CREATE TABLESPACE bench_ts LOCATION '${layout.tablespaceDir}'`);
  // The application's database in the tablespace: its data on a volume of its own, as in AWS.
  await source.query('CREATE DATABASE app TABLESPACE bench_ts');
  const pgbench = clientBin('pgbench');
  const load = pgbench
    ? `pgbench -i -s ${scale}, then pgbench -c 2 during the backup`
    : `generate_series, ${scale * 100_000} rows`;
  progress(`loading the data: ${load}`);
  if (pgbench) await run(pgbench, [...source.clientArgs, '-i', '-q', '-s', String(scale), 'app'], {});
  else {
    await run(
      join(source.bin, 'psql'),
      [
        ...source.clientArgs,
        '-d',
        'app',
        '-c',
        `CREATE TABLE rows AS SELECT g AS id, repeat('x', 80) AS payload FROM generate_series(1, ${scale * 100_000}) g`,
      ],
      {},
    );
  }
  const loadRun = pgbench
    ? start(pgbench, [...source.clientArgs, '-c', '2', '-j', '2', '-T', '3600', 'app'], {})
    : undefined;

  const synthesized = synthesizeForLocalRun(
    {
      name: clusterName,
      clusters: [
        {
          name: clusterName,
          instance: { instanceId: localInstanceId },
          fastCheckpoint: true,
          maxBackupMinutes: 10,
        },
      ],
      timeouts: { hostCommandSeconds: 600, heartbeatSeconds: 120 },
    },
    join(work, 'cdk.out'),
  );

  const client = await source.client();
  const paths = await clusterPaths(client);
  const hostVolumes = localHostVolumes(paths);
  // Loaded once the environment is set, as the demo does: the AWS SDK reads it when its clients are made.
  const [{ runBackupLocally }, { LocalEc2 }] = await Promise.all([
    import('../../local/local-backup.ts'),
    import('../../local/local-ec2.ts'),
  ]);
  const volumesFile = join(work, 'volumes.json');
  const ec2 = new LocalEc2(provider, localInstanceId, hostVolumes, localRootDevice, {
    workDir: ownedDir(join(work, 'restored'), 0o711),
    volumesFile,
  });
  // The snapshots and the clones are on the volumes or in the work directory, and go with them.
  const backupId = newBackupId();
  const agentBinDir = agentOnPath(ownedDir(join(work, 'bin'), 0o755), agent);
  const agentEnv = localAgentEnv(source.env, work, volumesFile, repositoryUrl);
  progress(`backup ${backupId} by the backup state machine, run locally`);
  const backup = await runBackupLocally({
    synthesized,
    backupId,
    cluster: clusterName,
    label: 'bench/restore',
    target: {
      volumeIds: hostVolumes.slice(1).map((v) => v.volumeId),
      fastCheckpoint: true,
      maxBackupMinutes: 10,
      repository: repositoryUrl,
    },
    ec2,
    agentBinDir,
    agentEnv,
    progress: () => {},
    detail: () => {},
    signal,
  });
  if (backup.run.failure || !backup.end) {
    throw new Error(
      `the backup failed: ${backup.run.failure ? `${backup.run.failure.error}: ${backup.run.failure.cause}` : 'the agent did not answer'}`,
    );
  }
  const sizes = await Promise.all(
    paths.map(async (p) => ({ role: p.role, path: p.path, bytes: await du(p.path) })),
  );
  // The load ends; the last segment goes to the repository; the source stops, to leave the cores to the restores.
  if (loadRun) {
    await client.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgbench'",
    );
    await loadRun.exited;
  }
  const { rows } = await client.query<{ segment: string }>(
    'SELECT pg_walfile_name(pg_current_wal_lsn()) AS segment',
  );
  await client.query('SELECT pg_switch_wal()');
  await waitForArchive(client, {
    files: [rows[0]!.segment],
    timeoutMs: 120_000,
    versionNum: major * 10000,
    fromStandby: false,
    progress: () => {},
  });
  await client.end();
  source.stopSync('fast');
  return {
    provider,
    noBtrfs,
    repositoryUrl,
    source,
    synthesized,
    backupId,
    ec2,
    agentBinDir,
    agentEnv,
    sizes,
    load,
  };
}
