/**
 * `pgsnap demo` (`npm start`): the embedded default on one machine, through
 * the product's own path. A throwaway cluster whose PGDATA, tablespace and
 * pg_wal are on three btrfs volumes when the machine allows (root, loop
 * devices, btrfs-progs), else in directories; archiving with `pgsnap wal-push`
 * into a file:// repository; a pgbench load; a backup driven by the state
 * machine the CDK app synthesizes, executed locally (local/local-backup.ts:
 * the SSM steps run the agent document, the EC2 steps the btrfs or copy
 * provider); then the drill: recover from the snapshots and the repository to
 * the end of the backup and to a point in time between two known commits,
 * check the rows, run pg_amcheck. Everything it made is removed at the end,
 * also after Ctrl-C.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type pg from 'pg';
import { formatDuration, newBackupId } from '#domain/backup/input';
import { PreconditionError } from '#domain/errors';
import { parse } from '../agent/cli/args.ts';
import { createOutput, type Output } from '../agent/cli/output.ts';
import { open, type RepositoryChoice } from '../agent/cli/repository-options.ts';
import { printUsage } from '../agent/cli/usage.ts';
import { createProvider } from '../agent/providers/create.ts';
import type { SnapshotProvider } from '../agent/providers/provider.ts';
import {
  asPostgres,
  Cluster,
  clientBin,
  freePort,
  type Major,
  newestAvailableMajor,
  ownedDir,
  serverUid,
} from '../agent/restore/cluster.ts';
import { waitForArchive } from '../agent/session/archive-wait.ts';
import { clusterPaths } from '../agent/volumes/cluster-paths.ts';
import { plainArchiveCommandLine } from '../agent/wal/shell-lines.ts';
import type * as LocalSynth from '../infra/local-synth.ts';
import { states } from '../infra/state-names.ts';
import { BtrfsVolumes, btrfsUnavailable } from './btrfs-volumes.ts';
import type { LocalBackupResult } from './local-backup.ts';
import type { LocalEc2 } from './local-ec2.ts';
import { agentOnPath, localAgentEnv, localHostVolumes, localRootDevice, stageAgent } from './staged-agent.ts';
import { startWriter, type Writer } from './writer.ts';

const execFileAsync = promisify(execFile);
/** Aborts every command still running when the demo is interrupted. */
const running = new AbortController();
const run = (file: string, args: string[]) => execFileAsync(file, args, { signal: running.signal });

/** The host as the local EC2 presents it. */
const localInstanceId = 'i-0000000000000000a';

/**
 * The CDK app's synthesis, built beside pgsnap.mjs (dist/local-synth.mjs) and
 * loaded by path, so that pgsnap itself does not carry aws-cdk-lib.
 */
async function loadLocalSynth(): Promise<typeof LocalSynth> {
  const candidates = ['../local-synth.mjs', './local-synth.mjs'].map((p) => new URL(p, import.meta.url));
  const found = candidates.find((url) => existsSync(url));
  if (!found) {
    throw new PreconditionError(
      'pgsnap demo synthesizes the CDK app and runs from the project checkout: run npm install && npm start there',
    );
  }
  return import(pathToFileURL(found.pathname).href);
}

export const demoUsage = `pgsnap demo [--keep] [--json]

Runs a whole backup and restore drill on this machine with no AWS: a throwaway
PostgreSQL cluster under load archiving into a file:// repository, a backup
driven by the CDK app's state machine executed locally (btrfs volume snapshots
when run as root with btrfs-progs, else copies), then two drills by the CDK
app's restore state machine, as in AWS: volumes made from the snapshots,
mounted, recovered (to the end of the backup, to a point in time), started and
checked, and removed. Exits 0 only if the restored data checked out.`;

interface DrillResult {
  name: string;
  restoreId: string;
  /** Request to accepting connections, as the restore record has it. */
  rtoSeconds: number | undefined;
  expectedRows: number;
  foundRows: number;
  extraRows: number;
  amcheck: 'passed' | 'failed' | 'skipped';
  /** What the restore removed once checked: every volume it made, and the instance it launched. */
  leftBehind: number;
  ok: boolean;
  failure?: string;
}

/** What every phase of the demo speaks through, and what it has made so far. */
interface Demo {
  out: Output;
  started: number;
  work: string;
  made: Made;
  /** The next numbered step, also once interrupted (the state machine's steps, which its abort signal stops). */
  say(message: string): void;
  /** The next numbered step; refused once interrupted. */
  progress(message: string): void;
  /** A line under the current step. */
  detail(message: string): void;
}

/**
 * Everything the demo started or made, stopped and removed by `cleanUp`:
 * the load first, then the commands still running, the drills' clones, the
 * servers, the volumes, and the work directory (unless --keep).
 */
class Made {
  readonly clusters: Cluster[] = [];
  readonly children: ChildProcess[] = [];
  readonly hostCommands = new Set<Promise<unknown>>();
  readonly discards: Array<() => Promise<void>> = [];
  volumes: BtrfsVolumes | undefined;
  writer: Writer | undefined;
  writerClient: pg.Client | undefined;

  constructor(
    private readonly work: string,
    private readonly keep: boolean,
  ) {}

  async cleanUp(): Promise<void> {
    // The writer first: its queries would fail, unhandled, once the server is gone.
    await this.writer?.stop().catch(() => {});
    await this.writerClient?.end().catch(() => {});
    running.abort();
    for (const child of this.children) child.kill('SIGTERM');
    // The agent commands the state machine started end with the abort above; their files are about to go.
    await Promise.race([
      Promise.allSettled([...this.hostCommands]),
      new Promise((resolve) => setTimeout(resolve, 15_000).unref()),
    ]);
    for (const discard of this.discards.reverse()) await discard().catch(() => {});
    for (const cluster of this.clusters.reverse()) cluster.stopSync('immediate');
    this.volumes?.destroy();
    if (!this.keep) rmSync(this.work, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
}

export async function demoCommand(args: string[]): Promise<number> {
  const { values } = parse('demo', args, { keep: { type: 'boolean', default: false } });
  if (values.help) return printUsage(demoUsage);
  const out = createOutput(values.json);
  const started = Date.now();
  let step = 0;
  let interrupted = false;
  const say = (message: string) => {
    step += 1;
    out.progress(`[${formatDuration(Date.now() - started).padStart(5)}] ${step}. ${message}`);
  };
  const progress = (message: string) => {
    // Once interrupted, the next step is not started: the cleanup under way must not race new servers or clones.
    if (interrupted) throw new Error('interrupted');
    say(message);
  };
  const detail = (message: string) => out.progress(`        ${message}`);

  // The AWS SDK's notice that it will need Node.js 22 from 2027 would repeat at every step of the demo.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const work = makeWorkDir();
  const made = new Made(work, values.keep);
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = true;
    out.progress(`${signal}: stopping and removing everything the demo made`);
    void made.cleanUp().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const demo: Demo = { out, started, work, made, say, progress, detail };
    const major = newestAvailableMajor();
    const layout = await prepareVolumes(demo);
    const { repository, agent, source } = await startSource(demo, major, layout);
    const writerClient = await startLoad(demo, source);
    const synthesized = await synthesizeStateMachine(demo);
    const backup = await takeBackup(demo, {
      synthesized,
      provider: layout.provider,
      repository,
      agent,
      source,
      writerClient,
    });
    const pointInTime = await markPointInTime(demo, writerClient);
    await archiveLastSegment(demo, source, writerClient);
    const walFiles = readdirSync(join(repository.url.slice('file://'.length), 'demo', 'wal')).length;
    const drills = await runDrills(demo, { backup, synthesized, repository, pointInTime });
    return printReport(demo, { backup, provider: layout.provider, repository, walFiles, drills });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await made.cleanUp();
  }
}

/** A work directory below TMPDIR that the server's user can reach. */
function makeWorkDir(): string {
  const work = ownedDir(mkdtempSync(join(tmpdir(), 'pgsnap-demo-')), 0o711);
  if (asPostgres('test', ['-x', work], { allowFailure: true }).status !== 0) {
    rmSync(work, { recursive: true, force: true });
    throw new PreconditionError(
      `the server's user cannot reach ${work} (a parent directory is private); set TMPDIR to a directory it can reach, such as /tmp`,
    );
  }
  return work;
}

interface Layout {
  dataDir: string;
  walDir: string;
  tablespaceDir: string;
  provider: SnapshotProvider;
}

/** Three btrfs volumes (PGDATA, a tablespace, pg_wal) where the machine allows, else three directories. */
async function prepareVolumes({ work, made, progress }: Demo): Promise<Layout> {
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
async function startSource(
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
async function startLoad({ made, progress }: Demo, source: Cluster): Promise<pg.Client> {
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

/** The CDK app synthesized for this one host: the backup state machine and the agent's SSM document. */
async function synthesizeStateMachine({
  work,
  progress,
  detail,
}: Demo): Promise<LocalSynth.SynthesizedForLocalRun> {
  progress("synthesizing the CDK app (infra/): the backup state machine and the agent's SSM document");
  const synthesized = (await loadLocalSynth()).synthesizeForLocalRun(
    {
      name: 'demo',
      clusters: [
        {
          name: 'demo',
          instance: { instanceId: localInstanceId },
          fastCheckpoint: true,
          maxBackupMinutes: 10,
        },
      ],
      timeouts: { hostCommandSeconds: 600, heartbeatSeconds: 120 },
    },
    join(work, 'cdk.out'),
  );
  detail(
    `${Object.keys(synthesized.definition.States).length} states, starting at "${synthesized.definition.StartAt}"`,
  );
  return synthesized;
}

interface Backup {
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
async function takeBackup(
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
    import('./local-backup.ts'),
    import('./local-ec2.ts'),
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
async function markPointInTime(
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
async function archiveLastSegment(
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

/** The two drills, one after the other: to the end of the backup, and to the point in time. */
async function runDrills(
  demo: Demo,
  {
    backup,
    synthesized,
    repository,
    pointInTime,
  }: {
    backup: Backup;
    synthesized: LocalSynth.SynthesizedForLocalRun;
    repository: RepositoryChoice;
    pointInTime: { at: string; pointInTimeRows: number };
  },
): Promise<DrillResult[]> {
  const drills: DrillResult[] = [];
  drills.push(
    await drill(
      demo,
      { backup, synthesized, repository },
      {
        name: 'end of backup (recovery_target = immediate)',
        target: { immediate: true },
        expectedRows: backup.committedBeforeEnd,
        exact: false,
      },
    ),
  );
  drills.push(
    await drill(
      demo,
      { backup, synthesized, repository },
      {
        name: `point in time (recovery_target_time = ${pointInTime.at})`,
        target: {
          time: new Date(pointInTime.at.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00')).toISOString(),
        },
        expectedRows: pointInTime.pointInTimeRows,
        exact: true,
      },
    ),
  );
  return drills;
}

/**
 * One drill, as in AWS: the restore state machine the CDK app synthesizes,
 * run locally in drill mode with the same Lambda handlers (the local EC2
 * makes each volume as a writable clone of its snapshot and "launches" an
 * instance on this host) and the same restore document on the host (the
 * staged agent mounts, recovers, starts and checks the cluster beside the
 * source, on a port of its own), then removes everything it made. The
 * rows are counted by the drill's own SQL check.
 */
async function drill(
  { work, progress, detail }: Demo,
  {
    backup,
    synthesized,
    repository,
  }: { backup: Backup; synthesized: LocalSynth.SynthesizedForLocalRun; repository: RepositoryChoice },
  {
    name,
    target,
    expectedRows,
    exact,
  }: { name: string; target: Record<string, unknown>; expectedRows: number; exact: boolean },
): Promise<DrillResult> {
  progress(`drill "${name}": the restore state machine runs, locally, from the backup's snapshots`);
  const { runRestoreLocally } = await import('./local-restore.ts');
  const { newRestoreId } = await import('#domain/restore/request');
  const restoreId = newRestoreId();
  const port = await freePort();
  const run = await runRestoreLocally({
    synthesized,
    executionName: restoreId,
    input: {
      cluster: 'demo',
      backupId: backup.backupId,
      target: target as never,
      mode: 'drill',
      instance: { launch: { launchTemplate: 'pgsnap-demo-drill', subnetId: 'subnet-0000000000000000a' } },
      mountRoot: ownedDir(join(work, restoreId), 0o711),
      port,
      checks: {
        amcheck: 'all',
        sql: {
          // Every row committed by then is back; after a point in time, not one row written after it.
          query: exact
            ? `SELECT count(*) FILTER (WHERE id <= ${expectedRows}) || '/' || count(*) FILTER (WHERE id > ${expectedRows}) FROM demo_events`
            : `SELECT count(*) FILTER (WHERE id <= ${expectedRows}) FROM demo_events`,
          expect: exact ? `${expectedRows}/0` : `${expectedRows}`,
        },
      },
    },
    clusters: [{ name: 'demo', repository: repository.url }],
    ec2: backup.ec2,
    agentBinDir: backup.agentBinDir,
    agentEnv: backup.agentEnv,
    detail,
    signal: running.signal,
    onStateEntered: (state) => detail(`restore state machine: ${state}`),
  });
  const repo = await open(repository);
  const record = await repo.readRestoreRecord(restoreId).finally(() => repo.close());
  const sql = record?.host?.checks.sql;
  const [found, extra] = (/returned "(\d+)(?:\/(\d+))?"/.exec(sql?.detail ?? '') ?? []).slice(1).map(Number);
  const foundRows = found ?? 0;
  const extraRows = extra ?? 0;
  const amcheck = record?.host?.checks.amcheck;
  const leftBehind =
    backup.ec2.clonedVolumes.length +
    backup.ec2.launchedInstances.filter((i: { state: string }) => i.state !== 'terminated').length;
  const ok =
    !run.run.failure &&
    record?.state === 'completed' &&
    foundRows === expectedRows &&
    (!exact || extraRows === 0) &&
    leftBehind === 0;
  detail(
    `${ok ? 'ok' : 'FAILED'}: ${foundRows} of ${expectedRows} rows${exact ? `, ${extraRows} after the target` : ''}, ` +
      `${amcheck?.detail ?? 'pg_amcheck not run'}; RTO ${record?.rtoSeconds?.toFixed(1) ?? '?'} s; ` +
      `${leftBehind === 0 ? 'nothing left behind' : `${leftBehind} volumes or instances left behind`}` +
      (run.run.failure ? `; ${run.run.failure.error}: ${run.run.failure.cause}` : ''),
  );
  return {
    name,
    restoreId,
    rtoSeconds: record?.rtoSeconds,
    expectedRows,
    foundRows,
    extraRows,
    amcheck: amcheck ? (amcheck.ok ? 'passed' : 'failed') : 'skipped',
    leftBehind,
    ok,
    ...(run.run.failure ? { failure: `${run.run.failure.error}: ${run.run.failure.cause}` } : {}),
  };
}

/** The report, as one JSON document or as lines; 0 only if every drill checked out. */
function printReport(
  { out, started }: Demo,
  {
    backup: { backupId, run: stateMachineRun, session, ended, snapshotMs, inBackupMs },
    provider,
    repository,
    walFiles,
    drills,
  }: {
    backup: Backup;
    provider: SnapshotProvider;
    repository: RepositoryChoice;
    walFiles: number;
    drills: DrillResult[];
  },
): number {
  const ok = drills.every((d) => d.ok);
  const report = {
    ok,
    backupId,
    serverVersion: String(session.serverVersion),
    stateMachine: {
      states: stateMachineRun.entered.length,
      events: stateMachineRun.events.map((e) => e.detailType),
    },
    provider: provider.name,
    repository: repository.url,
    startLsn: String(ended.startLsn),
    stopLsn: String(ended.stopLsn),
    inBackupModeMs: inBackupMs,
    snapshotMs,
    walFilesInRepository: walFiles,
    drills,
    totalMs: Date.now() - started,
  };
  out.result(report, [
    '',
    'pgsnap demo report',
    `  backup            ${backupId} (PostgreSQL ${String(session.serverVersion)})`,
    `  state machine     the CDK app's, run locally: ${stateMachineRun.entered.length} states, succeeded`,
    `  volumes           ${provider.name === 'btrfs' ? 'PGDATA, tablespace, pg_wal on three btrfs volumes' : 'directories, copied'}`,
    `  LSNs              ${String(ended.startLsn)} .. ${String(ended.stopLsn)}`,
    `  in backup mode    ${formatDuration(inBackupMs)} (${provider.name} snapshot: ${formatDuration(snapshotMs)})`,
    `  WAL archived      ${walFiles} files in ${repository.url}`,
    ...drills.map(
      (d) =>
        `  drill             ${d.name}: ${d.ok ? 'ok' : 'FAILED'}, ${d.foundRows}/${d.expectedRows} rows, amcheck ${d.amcheck}, RTO ${d.rtoSeconds?.toFixed(1) ?? '?'} s${d.failure ? ` (${d.failure})` : ''}`,
    ),
    `  data check        ${ok ? 'PASSED' : 'FAILED'}`,
  ]);
  return ok ? 0 : 1;
}
