/**
 * The exec provider: the operator's own snapshot command (ZFS, a SAN, a VM
 * snapshot). It runs once per backup with the paths in its environment; what it
 * prints on its last line of stdout is kept as the snapshot's reference.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { PreconditionError } from '#domain/errors';
import type { ClusterPath } from '../volumes/cluster-paths.ts';
import type { SnapshotProvider, VolumeSnapshot } from './provider.ts';

const run = promisify(execFile);

export class ExecProvider implements SnapshotProvider {
  readonly name = 'exec';

  constructor(private readonly command: string[]) {}

  async snapshot(backupId: string, paths: ClusterPath[]): Promise<VolumeSnapshot[]> {
    const { stdout } = await run(this.command[0]!, this.command.slice(1), {
      env: {
        ...process.env,
        PGSNAP_BACKUP_ID: backupId,
        // One path per line, role first: "data /pgdata", "tablespace /ts1", "wal /pgwal".
        PGSNAP_PATHS: paths.map((p) => `${p.role} ${p.path}`).join('\n'),
      },
    });
    const reference = stdout.trim().split('\n').pop() ?? '';
    return paths.map((p) => ({
      role: p.role,
      source: p.path,
      ...(p.oid ? { oid: p.oid } : {}),
      snapshot: reference,
    }));
  }

  async restore(): Promise<void> {
    throw new PreconditionError(
      'the exec provider cannot restore: restore with the tool that took the snapshot',
    );
  }

  scratchTarget(): string {
    throw new PreconditionError(
      'the exec provider cannot restore: restore with the tool that took the snapshot',
    );
  }

  async discard(): Promise<void> {}

  async delete(): Promise<void> {}
}
