/**
 * `pgsnap restore --restore-id`: the host's part of a restore the state
 * machine drives. From the restore record in the repository: mount the
 * volumes made from the backup's snapshots, prepare the data directory
 * (restoreBackup), start PostgreSQL, wait for consistency and the target,
 * check the data, and answer with a HostReport. A check that fails is in the
 * report (ok: false; the state machine judges); what stops the restore (a
 * volume missing, a mount point in use, recovery not reaching its target) is
 * thrown, with its error's name for the state machine's Catch.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { PreconditionError } from '#domain/errors';
import { type HostReport, hostReportSchema } from '#domain/repository/host-report';
import type { Repository } from '#domain/repository/repository';
import type { RecoveryTargetRequest, RestoreRecord } from '#domain/repository/restore-record';
import type { RepositoryChoice } from '../host/repository.ts';
import { connectionTarget } from '../postgres/client.ts';
import { appendOwnedFile, refuseLinksOnPath } from '../postgres/owned-paths.ts';
import { type Host, mountVolumes, thisHost } from './mount-volumes.ts';
import type { RecoveryTarget } from './prepare.ts';
import { readRecordInProgress } from './read-record.ts';
import { restoreBackup } from './restore-backup.ts';
import { readRestoreMarker, writeRestoreMarker } from './restore-marker.ts';
import { restoredPath } from './restore-paths.ts';
import { checkRestoredServer } from './restored-checks.ts';
import {
  findPgBin,
  type RestoredServer,
  requireServerOwner,
  type ServerControl,
  serverIsRunning,
  startServer,
  waitForRecovery,
} from './restored-server.ts';

export interface HostRestoreOptions {
  restoreId: string;
  /** The record's digest as the state machine wrote it (the restore document's); any other record is refused. */
  recordSha256?: string;
  /** systemd unit that starts the restored server; otherwise pg_ctl from pgBin (or found). */
  systemdUnit?: string;
  pgBin?: string;
  /** How long recovery may take before the restore gives up waiting. */
  timeoutMs: number;
  progress: (message: string) => void;
  host?: Host;
  env?: NodeJS.ProcessEnv;
}

function recoveryTarget(target: RecoveryTargetRequest | undefined): RecoveryTarget | undefined {
  if (!target) return undefined;
  if ('time' in target) return { kind: 'time', value: new Date(target.time).toISOString() };
  if ('lsn' in target) return { kind: 'lsn', value: target.lsn };
  if ('name' in target) return { kind: 'name', value: target.name };
  return { kind: 'immediate' };
}

/** Where the restore puts the cluster's parts: PGDATA, each tablespace by OID, and pg_wal when on a volume of its own. */
export function restoredLayout(record: RestoreRecord): {
  pgdata: string;
  tablespaces: Record<string, string>;
  walDir?: string;
} {
  const holds = record.volumes.flatMap((v) => v.source.holds);
  const data = holds.find((h) => h.role === 'data');
  if (!data) {
    throw new PreconditionError(
      `restore ${record.restoreId}: none of its volumes holds the data directory (${record.volumes
        .map((v) => v.snapshotId)
        .join(', ')}); the backup's manifest must record which volume holds PGDATA`,
    );
  }
  const pgdata = restoredPath(record, data.path);
  if (record.mountRoot === undefined) return { pgdata, tablespaces: {} };
  const tablespaces = Object.fromEntries(
    holds
      .filter((h) => h.role === 'tablespace' && h.tablespaceOid)
      .map((h) => [h.tablespaceOid!, restoredPath(record, h.path)]),
  );
  const wal = holds.find((h) => h.role === 'wal' && h.path !== join(data.path, 'pg_wal'));
  return { pgdata, tablespaces, ...(wal ? { walDir: restoredPath(record, wal.path) } : {}) };
}

export async function restoreOnHost(
  repository: Repository,
  choice: RepositoryChoice,
  options: HostRestoreOptions,
): Promise<HostReport> {
  const env = options.env ?? process.env;
  const record = await readRecordInProgress(repository, options.restoreId, options.recordSha256);
  const placed = mountVolumes(record, options.host ?? thisHost(env));
  const mountedAt = new Date().toISOString();
  for (const p of placed)
    options.progress(`${p.volumeId} ${p.already ? 'was already' : 'is'} at ${p.mountPoint} (${p.device})`);

  const { pgdata, tablespaces, walDir } = restoredLayout(record);
  // What root acts on below the mounts is the restored volumes' content: no link on the way, the expected owner.
  requireServerOwner(pgdata);
  for (const path of [...Object.values(tablespaces), ...(walDir ? [walDir] : [])]) {
    refuseLinksOnPath(path, 'the restored directory');
  }
  const control: ServerControl = options.systemdUnit
    ? { systemdUnit: options.systemdUnit }
    : { pgBin: findPgBin(pgdata, options.pgBin, env) };
  const serverEnv: NodeJS.ProcessEnv = {
    ...env,
    ...(record.port !== undefined ? { PGPORT: String(record.port) } : {}),
  };
  const server: RestoredServer = {
    pgdata,
    control,
    env: serverEnv,
    ...('pgBin' in control ? { logFile: join(pgdata, 'log', `pgsnap-${record.restoreId}.log`) } : {}),
  };
  let stopLsn: string | undefined;
  let preparedAt: string | undefined;
  let startedAt: string | undefined;
  const marker = readRestoreMarker(record.restoreId, env);
  if (marker && marker.pgdata === pgdata) {
    // A retry of this restore (the answer was lost): it prepared PGDATA before, and said so in its own state.
    stopLsn = marker.stopLsn;
    if (serverIsRunning(server)) {
      options.progress(`this restore prepared ${pgdata} before and its server runs: waiting for it again`);
    } else {
      options.progress(`this restore prepared ${pgdata} before: starting its server again`);
      startServer(server);
      startedAt = new Date().toISOString();
    }
  } else {
    const target = record.mode === 'standby' ? undefined : recoveryTarget(record.target);
    const prepared = await restoreBackup(repository, choice, {
      backupId: record.backupId,
      pgdata,
      ...(target ? { target, targetAction: 'promote' as const } : {}),
      ...(Object.keys(tablespaces).length > 0 ? { tablespaces } : {}),
      keepArchiving: false,
      ...(walDir ? { walDir } : {}),
      ...(record.mode === 'standby' ? { standby: { primaryConninfo: record.primaryConninfo ?? '' } } : {}),
      prefetch: { ahead: 0 },
    });
    stopLsn = prepared.stopLsn;
    if (record.port !== undefined) {
      appendOwnedFile(join(pgdata, 'postgresql.auto.conf'), `port = ${record.port}\n`, statSync(pgdata));
    }
    preparedAt = new Date().toISOString();
    writeRestoreMarker(
      { restoreId: record.restoreId, pgdata, ...(stopLsn ? { stopLsn } : {}), preparedAt },
      env,
    );
    options.progress(`${pgdata} is prepared to recover backup ${record.backupId}`);
    startServer(server);
    startedAt = new Date().toISOString();
    options.progress(`PostgreSQL started on ${pgdata}; waiting for recovery`);
  }
  const reached = await waitForRecovery(
    server,
    { mode: record.mode, ...(stopLsn ? { stopLsn } : {}) },
    { timeoutMs: options.timeoutMs, progress: options.progress },
  );
  options.progress(
    record.mode === 'standby'
      ? `the standby replayed past the backup's stop LSN (${reached.replayLsn})`
      : `recovery reached its target and the server promoted (replayed to ${reached.replayLsn})`,
  );

  const { host, port } = connectionTarget(serverEnv);
  const checks = await checkRestoredServer(server, record, {
    clientArgs: ['-h', host, '-p', String(port), ...(serverEnv.PGUSER ? ['-U', serverEnv.PGUSER] : [])],
    inRecovery: reached.inRecovery,
  });
  const report: HostReport = {
    mounts: placed.map((p) => ({
      volumeId: p.volumeId,
      device: p.device,
      mountPoint: p.mountPoint,
      ...(p.options ? { options: p.options } : {}),
    })),
    pgdata,
    timings: {
      mountedAt,
      ...(preparedAt ? { preparedAt } : {}),
      ...(startedAt ? { startedAt } : {}),
      ...(reached.consistentAt ? { consistentAt: reached.consistentAt } : {}),
      ...(reached.targetReachedAt ? { targetReachedAt: reached.targetReachedAt } : {}),
      ...(reached.acceptingAt ? { acceptingAt: reached.acceptingAt } : {}),
    },
    checks,
    ...(reached.lastReplayedCommit ? { lastReplayedCommit: reached.lastReplayedCommit } : {}),
    ...(reached.replayLsn ? { replayLsn: reached.replayLsn } : {}),
    ok: Object.values(checks).every((c) => c.ok),
  };
  return hostReportSchema.parse(report);
}
