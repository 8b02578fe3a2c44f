/** `pgsnap backups list` and `pgsnap backups show ID`: the catalog, read from the repository. */

import { PreconditionError, UsageError } from '#domain/errors';
import { validateBackupId } from '#domain/ids';
import type { Manifest } from '#domain/repository/manifest';
import type { Repository } from '#domain/repository/repository';
import { segmentRange } from '#domain/wal/file';
import { parse } from '../cli/args.ts';
import { copiesSummary, copyLines } from '../cli/backup-copies.ts';
import { columns, table } from '../cli/output.ts';
import { printUsage } from '../cli/usage.ts';
import { createOutput } from '../host/output.ts';
import { open, requireRepositoryChoice } from '../host/repository.ts';

export const backupsUsage = `pgsnap backups list [--json]
pgsnap backups show ID [--verify] [--json]

Reads the catalog of --repo / PGSNAP_REPO for --cluster / PGSNAP_CLUSTER.
list shows every backup, oldest first; show prints one manifest. With
--verify, show also reads every artifact back and checks its sha256, and
checks that every WAL segment from start to stop is in the repository.`;

export async function backupsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    'backups',
    args,
    { verify: { type: 'boolean', default: false } },
    true,
  );
  if (values.help) return printUsage(backupsUsage);
  const [action, ...rest] = positionals;
  const out = createOutput(values.json);
  if (action === 'list' && rest.length === 0) {
    if (values.verify) throw new UsageError('pgsnap backups list: --verify goes with backups show ID');
    const repository = await open(requireRepositoryChoice('backups', values));
    try {
      const manifests = await listManifests(repository);
      const drilled = await lastDrills(repository);
      out.result(
        {
          cluster: repository.cluster,
          repository: repository.store.url,
          backups: manifests.map((m) => ({
            ...m,
            ...(drilled.get(m.backupId) ? { drilledAt: drilled.get(m.backupId) } : {}),
          })),
        },
        manifests.length === 0
          ? [`no backups of ${repository.cluster} in ${repository.store.url}`]
          : listLines(manifests, drilled),
      );
      return 0;
    } finally {
      repository.close();
    }
  }
  if (action === 'show' && rest.length === 1) {
    const backupId = validateBackupId(rest[0]!);
    const repository = await open(requireRepositoryChoice('backups', values));
    try {
      const manifest = await repository.readManifest(backupId);
      if (!manifest) {
        throw new PreconditionError(
          `there is no backup ${backupId} of ${repository.cluster} in ${repository.store.url}; ` +
            'pgsnap backups list shows those there are',
        );
      }
      const verified = values.verify ? await verify(repository, manifest) : undefined;
      out.result({ ...manifest, ...(verified ? { verified } : {}) }, showLines(manifest, verified));
      return 0;
    } finally {
      repository.close();
    }
  }
  throw new UsageError('usage: pgsnap backups list | pgsnap backups show ID (see pgsnap backups --help)');
}

async function listManifests(repository: Repository): Promise<Manifest[]> {
  const ids = await repository.listBackupIds();
  const manifests = await Promise.all(ids.map((id) => repository.readManifest(id)));
  return manifests.filter((m): m is Manifest => m !== undefined);
}

/** When each backup was last drilled with success: a drill record of it that completed. */
async function lastDrills(repository: Repository): Promise<Map<string, string>> {
  const drilled = new Map<string, string>();
  for (const id of await repository.listRestoreIds()) {
    const record = await repository.readRestoreRecord(id);
    if (record?.mode !== 'drill' || record.state !== 'completed' || !record.backupId) continue;
    const at = record.timings.finishedAt ?? record.updatedAt;
    if ((drilled.get(record.backupId) ?? '') < at) drilled.set(record.backupId, at);
  }
  return drilled;
}

function listLines(manifests: Manifest[], drilled: Map<string, string>): string[] {
  const rows = manifests.map((m) => [
    m.backupId,
    m.state,
    m.timings.startedAt.replace(/\.\d+Z$/, 'Z'),
    m.startLsn,
    m.stopLsn ?? '-',
    copiesSummary(m),
    drilled.get(m.backupId)?.replace(/\.\d+Z$/, 'Z') ?? 'never',
    m.label,
  ]);
  return columns(
    ['BACKUP ID', 'STATE', 'STARTED', 'START LSN', 'STOP LSN', 'COPIES', 'DRILLED', 'LABEL'],
    rows,
  );
}

interface Verification {
  artifacts: 'ok';
  walSegments: number;
}

async function verify(repository: Repository, manifest: Manifest): Promise<Verification> {
  for (const artifact of manifest.artifacts) await repository.readArtifact(manifest.backupId, artifact);
  const pin = await repository.requirePin();
  const segments = manifest.wal
    ? segmentRange(manifest.wal.first, manifest.wal.last, pin.walSegmentSize)
    : [];
  const missing: string[] = [];
  for (const segment of segments) {
    if (!(await repository.hasWal(pin, segment))) missing.push(segment);
  }
  if (missing.length > 0) {
    throw new Error(
      `backup ${manifest.backupId} cannot be restored: WAL ${missing.join(', ')} is not in ${repository.url}`,
    );
  }
  return { artifacts: 'ok', walSegments: segments.length };
}

function showLines(m: Manifest, verified: Verification | undefined): string[] {
  return [
    ...table([
      ['backupId', m.backupId],
      ['cluster', m.cluster],
      ['state', m.state],
      ['label', m.label],
      ['failure', m.failure ? `${m.failure.reason} (${m.failure.at})` : undefined],
      ['systemIdentifier', m.systemIdentifier],
      ['serverVersion', m.serverVersion],
      ['backupFrom', m.backupFrom],
      ['timeline', m.timeline],
      ['startLsn', `${m.startLsn} (${m.startWalFile})`],
      ['stopLsn', m.stopLsn ? `${m.stopLsn} (${m.stopWalFile})` : undefined],
      ['wal', m.wal ? `${m.wal.first} … ${m.wal.last}` : undefined],
      ['startedAt', m.timings.startedAt],
      ['stoppedAt', m.timings.stoppedAt],
      ['completedAt', m.timings.completedAt],
      ['snapshots', m.snapshots.map((s) => s.snapshotId).join(', ')],
      ['verified', verified ? `artifacts ok, ${verified.walSegments} WAL segments present` : undefined],
    ]),
    ...m.artifacts.map((a) => `artifact ${a.name}: ${a.bytes} bytes, sha256 ${a.sha256}`),
    ...copyLines(m),
  ];
}
