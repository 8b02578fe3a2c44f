import { join } from 'node:path';
import type pg from 'pg';
import { newBackupId } from '#domain/ids';
import type { RepositoryChoice } from '../../agent/host/repository.ts';
import type { SnapshotProvider } from '../../agent/providers/provider.ts';
import { type Cluster, ownedDir } from '../../agent/restore/cluster.ts';
import { waitForArchive } from '../../agent/session/archive-wait.ts';
import { clusterPaths } from '../../agent/volumes/cluster-paths.ts';
import { states } from '../../infra/backup/state-names.ts';
import type * as LocalSynth from '../../infra/local-run/synthesize.ts';
import type { LocalBackupResult } from '../local-backup.ts';
import type { LocalEc2 } from '../local-ec2.ts';
import { agentOnPath, localAgentEnv, localHostVolumes, localRootDevice } from '../staged-agent.ts';
import { startWriter } from '../writer.ts';

import { type Demo, localInstanceId, running } from './made.ts';

export interface Backup {
  backupId: string;
  run: LocalBackupResult['run'];
  session: NonNullable<LocalBackupResult['begin']>;
  ended: NonNullable<LocalBackupResult['end']>;
  snapshotMs: number;
  inBackupMs: number;
  /** The writer's last committed row when the state machine entered its end step: the end-of-backup drill finds these. */
  committedBeforeEnd: number;
  /** The local EC2 that holds the backup's snapshots, and the agent as installed: what a drill restores with. */
  ec2: LocalEc2;
  agentBinDir: string;
  agentEnv: NodeJS.ProcessEnv;
}

/**
 * The backup, by the synthesized state machine run locally: the cluster's
 * directories as the host's EBS volumes, this very pgsnap as the installed
 * agent; its snapshots recorded in the manifest as the provider names them.
 */
export async function takeBackup(
  { work, made, say, progress, detail }: Demo,
  {
    synthesized,
    provider,
    repository,
    agent,
    source,
    writerClient,
  }: {
    synthesized: LocalSynth.SynthesizedForLocalRun;
    provider: SnapshotProvider;
    repository: RepositoryChoice;
    /** The staged pgsnap the servers run, installed on the host as the agent. */
    agent: string[];
    source: Cluster;
    writerClient: pg.Client;
  },
): Promise<Backup> {
  // Each of the cluster's directories stands for an EBS volume of the host; the root volume holds none of it.
  const paths = await clusterPaths(writerClient);
  const hostVolumes = localHostVolumes(paths);
  for (const v of hostVolumes.slice(1))
    detail(`${v.volumeId} ${v.device}: ${v.holds!.role} ${v.holds!.path}`);
  // Loaded here, after the environment above is set: the AWS SDK reads it when its clients are made.
  const [{ runBackupLocally }, { LocalEc2 }] = await Promise.all([
    import('../local-backup.ts'),
    import('../local-ec2.ts'),
  ]);
  // The volumes file is the local EC2's attach: begin --volumes and mount find the volumes there.
  const volumesFile = join(work, 'volumes.json');
  const ec2 = new LocalEc2(provider, localInstanceId, hostVolumes, localRootDevice, {
    workDir: ownedDir(join(work, 'restored'), 0o711),
    volumesFile,
  });
  made.discards.push(() => ec2.discardAll());
  const backupId = newBackupId();
  made.discards.push(() => provider.delete(ec2.takenFor(backupId)));
  // The agent as installed on a host (/usr/local/bin/pgsnap): the one the servers run.
  const agentBinDir = agentOnPath(ownedDir(join(work, 'bin'), 0o755), agent);
  const agentEnv = localAgentEnv(source.env, work, volumesFile, repository.url);
  let committedBeforeEnd = 0;
  progress(`backup ${backupId}: the state machine runs, locally (aws-local-stepfunctions)`);
  const backup = await runBackupLocally({
    synthesized,
    backupId,
    cluster: 'demo',
    label: 'pgsnap demo',
    target: {
      volumeIds: hostVolumes.slice(1).map((v) => v.volumeId),
      fastCheckpoint: true,
      maxBackupMinutes: 10,
      repository: repository.url,
    },
    ec2,
    agentBinDir,
    signal: running.signal,
    hostCommands: made.hostCommands,
    // The agent takes its connection from the libpq environment, as on a database host.
    agentEnv,
    // The state machine's steps are shown; stopping it once interrupted is the abort signal's work.
    progress: say,
    detail,
    onStateEntered: (name) => {
      if (name === states.end) committedBeforeEnd = made.writer?.lastCommitted ?? 0;
    },
  });
  if (backup.run.failure || !backup.begin || !backup.end) {
    throw new Error(
      `the backup failed: ${backup.run.failure ? `${backup.run.failure.error}: ${backup.run.failure.cause}` : 'the agent did not answer'}`,
    );
  }
  const session = backup.begin;
  const ended = backup.end;
  const snapshotMs = backup.snapshotMs ?? 0;
  const inBackupMs = Date.parse(String(ended.stoppedAt)) - Date.parse(String(ended.startedAt));
  detail(`in backup mode from ${String(ended.startLsn)} to ${String(ended.stopLsn)}`);
  return {
    backupId,
    run: backup.run,
    session,
    ended,
    snapshotMs,
    inBackupMs,
    committedBeforeEnd,
    ec2,
    agentBinDir,
    agentEnv,
  };
}

/**
 * A point in time between two known commits: the writer stopped, the time
 * taken, then a few more rows written after it; then the load is stopped.
 */
export async function markPointInTime(
  { made, progress }: Demo,
  writerClient: pg.Client,
): Promise<{ at: string; pointInTimeRows: number }> {
  await made.writer!.stop();
  const pointInTimeRows = made.writer!.lastCommitted;
  const [{ at }] = (await writerClient.query<{ at: string }>('SELECT clock_timestamp()::text AS at'))
    .rows as [{ at: string }];
  await new Promise((r) => setTimeout(r, 200));
  progress(`a point in time, ${at}, between row ${pointInTimeRows} and the rows after it`);
  made.writer = startWriter(writerClient, ['demo_events'], 1, pointInTimeRows);
  await new Promise((r) => setTimeout(r, 500));
  await made.writer.stop();
  for (const child of made.children) child.kill('SIGTERM');
  return { at, pointInTimeRows };
}

/** Switches to a new segment and waits until the last one written is in the repository; ends the writer's session. */
export async function archiveLastSegment(
  { made, detail }: Demo,
  source: Cluster,
  writerClient: pg.Client,
): Promise<void> {
  const [{ segment }] = (
    await writerClient.query<{ segment: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS segment')
  ).rows as [{ segment: string }];
  await writerClient.query('SELECT pg_switch_wal()');
  await waitForArchive(writerClient, {
    files: [segment],
    timeoutMs: 120_000,
    versionNum: source.major * 10000,
    fromStandby: false,
    progress: detail,
  });
  await writerClient.end();
  made.writerClient = undefined;
}
