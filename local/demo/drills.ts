import { mkdirSync, rmSync } from 'node:fs';
import { open, type RepositoryChoice } from '../../agent/host/repository.ts';
import { freePort } from '../../agent/restore/cluster.ts';
import type * as LocalSynth from '../../infra/local-run/synthesize.ts';

import type { Backup } from './backup.ts';
import { type Demo, running } from './made.ts';

export interface DrillResult {
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

/** The two drills, one after the other: to the end of the backup, and to the point in time. */
export async function runDrills(
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
export async function drill(
  { work, made, progress, detail }: Demo,
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
  const { runRestoreLocally } = await import('../local-restore.ts');
  const { newRestoreId } = await import('#domain/ids');
  const restoreId = newRestoreId();
  const port = await freePort();
  // The restore's mount root beside the work directory, not in it: the target refuses to mount as root below
  // a directory another user owns, and the work directory is the servers' user's.
  const mountRoot = `${work}-${restoreId}`;
  mkdirSync(mountRoot, { mode: 0o755 });
  made.discards.push(async () => rmSync(mountRoot, { recursive: true, force: true }));
  const run = await runRestoreLocally({
    synthesized,
    executionName: restoreId,
    input: {
      cluster: 'demo',
      backupId: backup.backupId,
      target: target as never,
      mode: 'drill',
      instance: { launch: { launchTemplate: 'pgsnap-demo-drill', subnetId: 'subnet-0000000000000000a' } },
      mountRoot,
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
