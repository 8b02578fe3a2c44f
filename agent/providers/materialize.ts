/**
 * `pgsnap restore --from-snapshot`: a backup's local snapshots (copy, btrfs)
 * put back by pgsnap itself, so that a restore on the host is one command, as
 * `pgbackrest restore` is: the data directory's snapshot at --pgdata (a
 * writable btrfs snapshot of the backup's, or a copy), each tablespace's at
 * the directory --tablespace OID=DIR gives it. Never over anything: each
 * target must be absent or an empty directory.
 */
import { existsSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { messageOf, PreconditionError, UsageError } from '#domain/errors';
import type { Manifest } from '#domain/repository/manifest';
import { createProvider, localProviders } from './create.ts';

export interface Materialized {
  provider: string;
  /** What was made, data directory first. */
  targets: string[];
  /** Removes what was made (a preparation that failed after it). */
  discard(): Promise<void>;
}

export async function materializeSnapshots(
  manifest: Manifest,
  pgdata: string,
  tablespaces: Record<string, string> | undefined,
): Promise<Materialized> {
  const snapshots = manifest.snapshots;
  const provider = snapshots[0]?.provider;
  if (!provider || !localProviders.includes(provider) || snapshots.some((s) => s.provider !== provider)) {
    throw new PreconditionError(
      `--from-snapshot restores ${localProviders.join(' or ')} snapshots on this host; backup ` +
        `${manifest.backupId} has ${provider ? `${provider} snapshots` : 'none'}. For EBS, pgsnap restore start ` +
        'creates and mounts its volumes, or create them from the snapshots and mount them yourself',
    );
  }
  if (snapshots.some((s) => s.state === 'deleted' || !existsSync(s.snapshotId))) {
    throw new PreconditionError(
      `backup ${manifest.backupId}'s ${provider} snapshots are not on this host (or were deleted by retention): ` +
        snapshots.map((s) => s.snapshotId).join(', '),
    );
  }
  const plan: Array<{ snapshot: string; role: string; target: string }> = [];
  for (const s of snapshots) {
    const role = s.role ?? 'data';
    if (role === 'data') plan.unshift({ snapshot: s.snapshotId, role, target: resolve(pgdata) });
    else if (role === 'tablespace') {
      const target = tablespaces?.[s.tablespaceOid ?? ''];
      if (!target) {
        throw new UsageError(
          `backup ${manifest.backupId} has a snapshot of tablespace ${s.tablespaceOid} (${s.path}): give ` +
            `--tablespace ${s.tablespaceOid}=DIR, where to restore it (never its live directory)`,
        );
      }
      plan.push({ snapshot: s.snapshotId, role, target: resolve(target) });
    }
    // A separate pg_wal snapshot is not needed: restore empties pg_wal, and recovery fetches the WAL.
  }
  for (const { target } of plan) requireEmpty(target);
  const made = await createProvider(provider, {}, 'restore');
  const targets: string[] = [];
  const discard = async () => {
    for (const target of [...targets].reverse()) await made.discard(target);
  };
  try {
    for (const step of plan) {
      // Both providers make the target themselves: an empty directory there would receive the snapshot inside.
      if (existsSync(step.target)) rmdirSync(step.target);
      await made.restore({ role: step.role as 'data', source: '', snapshot: step.snapshot }, step.target);
      targets.push(step.target);
    }
  } catch (error) {
    await discard();
    throw new PreconditionError(
      `could not put the ${provider} snapshot of backup ${manifest.backupId} in place: ${messageOf(error)}` +
        (provider === 'btrfs'
          ? " (a btrfs snapshot can only be made on the file system of the backup's)"
          : ''),
      { cause: error },
    );
  }
  return { provider, targets, discard };
}

function requireEmpty(target: string): void {
  if (!existsSync(target)) return;
  if (!statSync(target).isDirectory() || readdirSync(target).length > 0) {
    throw new PreconditionError(
      `--from-snapshot puts the snapshot at ${target}, which is not empty: give a new or empty directory ` +
        '(pgsnap restores never write over a data directory)',
    );
  }
}
