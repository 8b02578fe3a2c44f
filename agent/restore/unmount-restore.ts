/**
 * `pgsnap unmount --restore-id`: the drill's teardown and the restore state
 * machine's cleanup path on the host. Stops the restored server when asked,
 * then takes away only what `pgsnap mount` placed for this restore (mounts of
 * the record's volumes' devices, the links it made). Nothing there is
 * success: the cleanup path may run after a mount that never happened.
 */
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { PreconditionError } from '#domain/errors';
import type { Repository } from '#domain/repository/repository';
import { type Host, type RemovedVolume, thisHost, unmountVolumes } from './mount-volumes.ts';
import { readRecord } from './read-record.ts';
import { removeRestoreMarker } from './restore-marker.ts';
import { restoredLayout } from './restore-on-host.ts';
import { findPgBin, type ServerControl, serverIsRunning, stopServer } from './restored-server.ts';

export interface UnmountOptions {
  restoreId: string;
  /** The record's digest as the state machine wrote it; any other record is refused. */
  recordSha256?: string;
  stopServer: boolean;
  systemdUnit?: string;
  pgBin?: string;
  host?: Host;
}

export interface UnmountResult {
  restoreId: string;
  pgdata: string;
  server: 'stopped' | 'not running';
  volumes: RemovedVolume[];
}

export async function unmountRestore(
  repository: Repository,
  options: UnmountOptions,
): Promise<UnmountResult> {
  const record = await readRecord(repository, options.restoreId, options.recordSha256);
  const { pgdata } = restoredLayout(record);
  let server: UnmountResult['server'] = 'not running';
  if (lstatSync(join(pgdata, 'PG_VERSION'), { throwIfNoEntry: false })) {
    const control: ServerControl = options.systemdUnit
      ? { systemdUnit: options.systemdUnit }
      : { pgBin: findPgBin(pgdata, options.pgBin) };
    const restored = { pgdata, control, env: process.env };
    if (options.stopServer) server = stopServer(restored);
    else if (serverIsRunning(restored)) {
      throw new PreconditionError(
        `the restored server still runs on ${pgdata}: its volumes cannot be unmounted under it. ` +
          'Give --stop-server to stop it first (pg_ctl -m fast, then immediate), or stop it yourself',
      );
    }
  }
  const volumes = unmountVolumes(record, options.host ?? thisHost());
  removeRestoreMarker(record.restoreId, process.env);
  return { restoreId: record.restoreId, pgdata, server, volumes };
}
