/**
 * `pgsnap drill --backup-id ID`: a restore drill of any backup whose snapshots
 * a local provider can restore: the snapshots put back in a scratch place, the
 * data directory prepared from the repository, recovered to the end of the
 * backup on a throwaway server, and checked. A backup is only trusted once
 * drilled. Everything the drill made is removed afterwards.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatDuration } from '#domain/backup/input';
import { PreconditionError, UsageError } from '#domain/errors';
import { validateBackupId } from '#domain/ids';
import type { Manifest } from '#domain/repository/manifest';
import { parse } from '../cli/args.ts';
import { progressOutput } from '../cli/terminal-progress.ts';
import { printUsage } from '../cli/usage.ts';
import { createContext } from '../host/context.ts';
import { open, requireRepositoryChoice } from '../host/repository.ts';
import { createProvider, localProviders } from '../providers/create.ts';
import type { SnapshotProvider } from '../providers/provider.ts';
import { checkRestoredCluster, type DataCheck } from '../restore/checks.ts';
import { type Recovered, recoverFromSnapshots } from '../restore/recover.ts';

export const drillUsage = `pgsnap drill --backup-id ID --repo URL --cluster NAME [--keep] [--json]

Restores backup ID from its local snapshots (copy or btrfs) into a scratch
place, recovers it to the end of the backup on a throwaway server, and checks
it: consistency reached, pg_amcheck --heapallindexed on every database, and
pg_checksums when data checksums are on. Exits 0 only if every check passed.
--keep keeps the restored data directory and the throwaway server's log,
also when recovery or a check failed.`;

export interface DrillReport {
  backupId: string;
  provider: string;
  restoreMs: number;
  check: DataCheck;
  /** The restored data directory, with --keep. */
  kept?: string;
  ok: boolean;
}

function localSnapshots(manifest: Manifest) {
  const snapshots = manifest.snapshots;
  const provider = snapshots[0]?.provider;
  if (!provider || !localProviders.includes(provider) || snapshots.some((s) => !s.role || !s.path)) {
    throw new PreconditionError(
      `backup ${manifest.backupId} has ${provider ? `${provider} snapshots` : 'no snapshots in its manifest'}; ` +
        `a drill restores ${localProviders.join(' or ')} snapshots on this host. For EBS, create volumes from ` +
        'the snapshots, mount them, and run pgsnap restore.',
    );
  }
  const gone = snapshots.filter((s) => s.state === 'deleted');
  if (gone.length > 0) throw new PreconditionError(`backup ${manifest.backupId}'s snapshots were deleted`);
  return { provider, snapshots };
}

export async function drillCommand(args: string[]): Promise<number> {
  const { values } = parse('drill', args, {
    'backup-id': { type: 'string' },
    repo: { type: 'string' },
    keep: { type: 'boolean', default: false },
  });
  if (values.help) return printUsage(drillUsage);
  if (!values['backup-id'])
    throw new UsageError('pgsnap drill: --backup-id is required (pgsnap backups list shows them)');
  const backupId = validateBackupId(values['backup-id']);
  const ctx = createContext(values);
  const out = progressOutput(ctx.out);
  const choice = requireRepositoryChoice('drill', values);
  const started = Date.now();
  const progress = (message: string) => out.progress(`[${formatDuration(Date.now() - started)}] ${message}`);

  const repository = await open(choice);
  let manifest: Manifest | undefined;
  let label: string;
  let map: { text: string; sha256: string } | undefined;
  try {
    manifest = await repository.readManifest(backupId);
    if (!manifest) throw new PreconditionError(`there is no backup ${backupId} in ${repository.url}`);
    if (manifest.state !== 'completed') {
      throw new PreconditionError(
        `backup ${backupId} is ${manifest.state}, not completed; only a completed backup can be drilled`,
      );
    }
    const labelRecord = manifest.artifacts.find((a) => a.name === 'backup_label');
    if (!labelRecord) throw new PreconditionError(`backup ${backupId} has no backup_label`);
    label = (await repository.readArtifact(backupId, labelRecord)).toString('utf8');
    const mapRecord = manifest.artifacts.find((a) => a.name === 'tablespace_map');
    if (mapRecord) {
      map = {
        text: (await repository.readArtifact(backupId, mapRecord)).toString('utf8'),
        sha256: mapRecord.sha256,
      };
    }
  } finally {
    repository.close();
  }
  const { provider: providerName, snapshots } = localSnapshots(manifest);
  const provider: SnapshotProvider = await createProvider(providerName, {}, 'restore');

  // Ours, 0711: the server's user reaches what is made for it inside, and can plant nothing beside it.
  const work = mkdtempSync(join(tmpdir(), 'pgsnap-drill-'));
  chmodSync(work, 0o711);
  let recovered: Recovered | undefined;
  try {
    progress(
      `restoring ${snapshots.length} ${providerName} snapshot(s) of backup ${backupId} and recovering it ` +
        `on a throwaway server to the end of the backup (${manifest.stopLsn})`,
    );
    recovered = await recoverFromSnapshots({
      manifest,
      label: { text: label, sha256: manifest.artifacts.find((a) => a.name === 'backup_label')!.sha256 },
      ...(map ? { map } : {}),
      provider,
      snapshots,
      repository: choice,
      target: { kind: 'immediate' },
      work,
      name: 'drill',
      keep: values.keep,
    });
    const { cluster, restoreMs } = recovered;
    progress('checking the data: pg_amcheck --heapallindexed on every database, pg_checksums');
    const check = await checkRestoredCluster(cluster);
    const report: DrillReport = {
      backupId,
      provider: providerName,
      restoreMs,
      check,
      ok: check.ok,
      ...(values.keep ? { kept: recovered.pgdata } : {}),
    };
    out.result({ ...report }, [
      `drill of backup ${backupId}: ${check.ok ? 'PASSED' : 'FAILED'}`,
      `  restore and recovery  ${formatDuration(restoreMs)} (${providerName})`,
      `  consistent            ${check.consistent ? 'yes' : 'NO'}`,
      `  pg_amcheck            ${check.amcheck} (${check.tables} tables in ${check.databases} databases)`,
      `  data checksums        ${check.checksums}`,
      ...check.problems.map((p) => `  problem: ${p}`),
    ]);
    return check.ok ? 0 : 1;
  } finally {
    if (!values.keep) {
      await recovered?.discard();
      rmSync(work, { recursive: true, force: true, maxRetries: 5 });
    } else if (recovered) {
      progress(
        `kept the restored data directory ${recovered.pgdata} and the server's log ${recovered.cluster.logFile}`,
      );
    }
    out.stop();
  }
}
