/** The demo's source cluster: its volumes, the server archiving into the repository, and the load on it. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type pg from 'pg';
import type { RepositoryChoice } from '../../agent/host/repository.ts';
import { createProvider } from '../../agent/providers/create.ts';
import type { SnapshotProvider } from '../../agent/providers/provider.ts';
import { Cluster, clientBin, type Major, ownedDir, serverUid } from '../../agent/restore/cluster.ts';
import { plainArchiveCommandLine } from '../../agent/wal/shell-lines.ts';
import { BtrfsVolumes, btrfsUnavailable } from '../btrfs-volumes.ts';
import { stageAgent } from '../staged-agent.ts';
import { startWriter } from '../writer.ts';

import { type Demo, run } from './made.ts';

export interface Layout {
  dataDir: string;
  walDir: string;
  tablespaceDir: string;
  provider: SnapshotProvider;
}

/** Three btrfs volumes (PGDATA, a tablespace, pg_wal) where the machine allows, else three directories. */
export async function prepareVolumes({ work, made, progress }: Demo): Promise<Layout> {
  const noVolumes = btrfsUnavailable();
  if (noVolumes === undefined) {
    progress('making three btrfs volumes on loop devices: PGDATA, a tablespace, pg_wal');
    const volumes = new BtrfsVolumes(join(work, 'volumes'));
    made.volumes = volumes;
    return {
      dataDir: volumes.create('pgdata', 1024).subvolume,
      tablespaceDir: volumes.create('tablespace', 512).subvolume,
      walDir: volumes.create('pgwal', 1024).subvolume,
      provider: await createProvider('btrfs', {}),
    };
  }
  progress(`no volume snapshots here (${noVolumes}): PGDATA, a tablespace and pg_wal in directories, copied`);
  return {
    dataDir: join(ownedDir(join(work, 'pgdata')), 'data'),
    tablespaceDir: ownedDir(join(work, 'tablespace')),
    walDir: join(ownedDir(join(work, 'pgwal')), 'wal'),
    provider: await createProvider('copy', { snapshotDir: ownedDir(join(work, 'snapshots')) }),
  };
}

/**
 * The file:// repository, pgsnap staged where the servers' user can run it,
 * and the source cluster archiving into the repository with that pgsnap's
 * wal-push, with its tablespace and table.
 */
export async function startSource(
  { work, made, progress, detail }: Demo,
  major: Major,
  { dataDir, walDir, tablespaceDir }: Layout,
): Promise<{ repository: RepositoryChoice; agent: string[]; source: Cluster }> {
  const repository: RepositoryChoice = {
    url: `file://${ownedDir(join(work, 'repository'), 0o750)}`,
    cluster: 'demo',
  };
  // What the servers run (archive_command, the drills' restore_command), where their user can run it.
  const agent = stageAgent(join(work, 'agent'), serverUid());
  const walPush = plainArchiveCommandLine({
    url: repository.url,
    cluster: repository.cluster,
    pgsnap: agent,
  });
  progress(
    `starting a throwaway PostgreSQL ${major} cluster, archiving with pgsnap wal-push into ${repository.url}`,
  );
  const source = await Cluster.create({
    major,
    root: ownedDir(join(work, 'source')),
    initdbAt: { dataDir, walDir },
    settings: { archive_command: `'${walPush.replaceAll("'", "''")}'`, max_wal_size: "'256MB'" },
  });
  made.clusters.push(source);
  detail(`the servers run pgsnap as ${agent.join(' ')}`);
  await source.query(`CREATE TABLESPACE demo_ts LOCATION '${tablespaceDir}'`);
  await source.query('CREATE TABLE demo_events (id bigint PRIMARY KEY, payload text) TABLESPACE demo_ts');
  return { repository, agent, source };
}

/** pgbench in a database of its own (where there is a pgbench), and a writer of numbered rows; returns the writer's session. */
export async function startLoad({ made, progress }: Demo, source: Cluster): Promise<pg.Client> {
  const pgbench = clientBin('pgbench');
  const pgArgs = source.clientArgs;
  if (pgbench) {
    // In a database of its own, as an application's: the agent connects to postgres (see the README).
    await source.query('CREATE DATABASE app');
    progress('loading pgbench data into database app (scale 10, about 160 MB)');
    await run(pgbench, [...pgArgs, '-i', '-q', '-s', '10', 'app']);
    made.children.push(
      spawn(pgbench, [...pgArgs, '-c', '2', '-j', '2', '-T', '3600', 'app'], { stdio: 'ignore' }),
    );
  }
  const writerClient = await source.client();
  made.writerClient = writerClient;
  made.writer = startWriter(writerClient, ['demo_events'], 1);
  progress(`load running: ${pgbench ? 'pgbench -c 2, and ' : ''}a writer inserting numbered rows`);
  await new Promise((r) => setTimeout(r, 1_000));
  return writerClient;
}
