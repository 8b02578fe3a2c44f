import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { formatDuration } from '#domain/backup/input';
import { PreconditionError } from '#domain/errors';
import { parse } from '../agent/cli/args.ts';
import { printUsage } from '../agent/cli/usage.ts';
import { createOutput } from '../agent/host/output.ts';
import type { RepositoryChoice } from '../agent/host/repository.ts';
import type { SnapshotProvider } from '../agent/providers/provider.ts';
import { asPostgres, newestAvailableMajor, ownedDir } from '../agent/restore/cluster.ts';
import type * as LocalSynth from '../infra/local-run/synthesize.ts';
import { archiveLastSegment, type Backup, markPointInTime, takeBackup } from './demo/backup.ts';
import { type DrillResult, runDrills } from './demo/drills.ts';
import { type Demo, localInstanceId, Made } from './demo/made.ts';
import { prepareVolumes, startLoad, startSource } from './demo/source.ts';

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
