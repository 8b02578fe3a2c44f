/** `pgsnap backups list` and `pgsnap backups show ID`: the catalog, read from the repository. */

import { fleetView } from '#domain/backup/fleet-view';
import { type RestorableWindow, restorableWindow } from '#domain/backup/restorable-window';
import { PreconditionError, UsageError } from '#domain/errors';
import { validateBackupId } from '#domain/ids';
import type { Manifest } from '#domain/repository/manifest';
import type { Repository } from '#domain/repository/repository';
import { segmentRange } from '#domain/wal/file';
import { parse } from '../cli/args.ts';
import {
  copiesSummary,
  copyLines,
  formatBytes,
  snapshotLines,
  snapshotsSummary,
  windowLines,
} from '../cli/backup-copies.ts';
import { fleetLines } from '../cli/fleet-lines.ts';
import { columns, table } from '../cli/output.ts';
import { printUsage } from '../cli/usage.ts';
import { createOutput } from '../host/output.ts';
import { open, openWhole, requireRepositoryChoice } from '../host/repository.ts';
import { snapshotBytes } from '../providers/snapshot-size.ts';

export const backupsUsage = `pgsnap backups list [--json]
pgsnap backups list --all [--rpo-hours H] [--json]
pgsnap backups show ID [--verify] [--json]

Reads the catalog of --repo / PGSNAP_REPO for --cluster / PGSNAP_CLUSTER.
list shows every backup, oldest first: its snapshot set, size where the
provider knows it (EBS: the volumes; copy, btrfs: the bytes on this host),
and how far a restore of it reaches in the archived WAL; then the restorable
window: from the stop of the oldest completed backup to the end of the WAL
archived without a gap after the newest, with every gap in the WAL named.
show prints one manifest, its snapshots and the same window. With --verify,
show also reads every artifact back and checks its sha256, and checks that
every WAL segment from start to stop is in the repository.
list --all shows every cluster of --repo (no --cluster needed): its newest
completed backup and its age, against --rpo-hours when given (the RPO is the
deployment's configuration, not in the repository), how far its DR copies lag
behind it, and its last successful drill.`;

export async function backupsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    'backups',
    args,
    {
      verify: { type: 'boolean', default: false },
      all: { type: 'boolean', default: false },
      'rpo-hours': { type: 'string' },
    },
    true,
  );
  if (values.help) return printUsage(backupsUsage);
  const [action, ...rest] = positionals;
  const out = createOutput(values.json);
  if (values['rpo-hours'] !== undefined && !values.all) {
    throw new UsageError('pgsnap backups: --rpo-hours goes with backups list --all');
  }
  if (action === 'list' && rest.length === 0 && values.all) {
    if (values.verify) throw new UsageError('pgsnap backups list: --verify goes with backups show ID');
    if (values.cluster !== undefined) {
      throw new UsageError(
        'pgsnap backups list: give --all or --cluster, not both (--all lists every cluster)',
      );
    }
    const rpoHours = values['rpo-hours'] === undefined ? undefined : hours(values['rpo-hours']);
    const store = await openWhole('backups', values);
    try {
      const views = await fleetView(store, rpoHours === undefined ? {} : { rpoHours });
      out.result(
        { repository: store.url, ...(rpoHours !== undefined ? { rpoHours } : {}), clusters: views },
        fleetLines(store.url, views, rpoHours),
      );
      return 0;
    } finally {
      store.close();
    }
  }
  if (action === 'list' && rest.length === 0) {
    if (values.verify) throw new UsageError('pgsnap backups list: --verify goes with backups show ID');
    const repository = await open(requireRepositoryChoice('backups', values));
    try {
      const manifests = await listManifests(repository);
      const drilled = await lastDrills(repository);
      const { window, latestAt } = await windowOf(repository, manifests);
      const sizes = await Promise.all(manifests.map((m) => setBytes(m)));
      out.result(
        {
          cluster: repository.cluster,
          repository: repository.store.url,
          backups: manifests.map((m, i) => ({
            ...m,
            ...(sizes[i] !== undefined ? { bytes: sizes[i] } : {}),
            ...(window?.reachable[m.backupId] ? { restorableTo: window.reachable[m.backupId] } : {}),
            ...(drilled.get(m.backupId) ? { drilledAt: drilled.get(m.backupId) } : {}),
          })),
          window: window ? { ...window, ...(latestAt ? { latestAt } : {}) } : null,
        },
        manifests.length === 0
          ? [`no backups of ${repository.cluster} in ${repository.store.url}`]
          : [...listLines(manifests, drilled, sizes, window), '', ...windowLines(window, latestAt)],
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
      const { window, latestAt } = await windowOf(repository, await listManifests(repository));
      const bytes = await Promise.all(manifest.snapshots.map((snapshot) => snapshotBytes(snapshot)));
      const restorableTo = window?.reachable[manifest.backupId];
      out.result(
        {
          ...manifest,
          snapshotBytes: bytes.map((b) => b ?? null),
          ...(restorableTo ? { restorableTo } : {}),
          window: window ? { ...window, ...(latestAt ? { latestAt } : {}) } : null,
          ...(verified ? { verified } : {}),
        },
        [
          ...showLines(manifest, verified, restorableTo),
          ...snapshotLines(manifest, bytes),
          ...windowLines(window, latestAt),
        ],
      );
      return 0;
    } finally {
      repository.close();
    }
  }
  throw new UsageError(
    'usage: pgsnap backups list [--all] | pgsnap backups show ID (see pgsnap backups --help)',
  );
}

function hours(text: string): number {
  const value = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(value > 0)) {
    throw new UsageError(
      `--rpo-hours ${JSON.stringify(text)} is not a positive number of hours, e.g. --rpo-hours 24`,
    );
  }
  return value;
}

/** The repository's restorable window, and when its latest segment was archived (where the store says). */
async function windowOf(
  repository: Repository,
  manifests: Manifest[],
): Promise<{ window: RestorableWindow | undefined; latestAt: string | undefined }> {
  const segmentSize = manifests[0]?.walSegmentSize;
  if (segmentSize === undefined) return { window: undefined, latestAt: undefined };
  const wal = await repository.listWal();
  const window = restorableWindow(
    manifests,
    wal.map((w) => w.name),
    segmentSize,
  );
  const key = window && wal.find((w) => w.name === window.latest.segment)?.key;
  const at = key ? await repository.store.modifiedAt?.(key) : undefined;
  return { window, latestAt: at?.toISOString().replace(/\.\d+Z$/, 'Z') };
}

/** The snapshot set's size, when the provider knows every snapshot's. */
async function setBytes(manifest: Manifest): Promise<number | undefined> {
  if (manifest.snapshots.length === 0) return undefined;
  const bytes = await Promise.all(manifest.snapshots.map((s) => snapshotBytes(s)));
  return bytes.some((b) => b === undefined) ? undefined : bytes.reduce((a, b) => a! + b!, 0);
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

function listLines(
  manifests: Manifest[],
  drilled: Map<string, string>,
  sizes: Array<number | undefined>,
  window: RestorableWindow | undefined,
): string[] {
  const rows = manifests.map((m, i) => [
    m.backupId,
    m.state,
    m.timings.startedAt.replace(/\.\d+Z$/, 'Z'),
    m.startLsn,
    m.stopLsn ?? '-',
    snapshotsSummary(m),
    formatBytes(sizes[i]),
    window?.reachable[m.backupId] ?? '-',
    copiesSummary(m),
    drilled.get(m.backupId)?.replace(/\.\d+Z$/, 'Z') ?? 'never',
    m.label,
  ]);
  return columns(
    [
      'BACKUP ID',
      'STATE',
      'STARTED',
      'START LSN',
      'STOP LSN',
      'SNAPSHOTS',
      'SIZE',
      'RESTORABLE TO',
      'COPIES',
      'DRILLED',
      'LABEL',
    ],
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

function showLines(
  m: Manifest,
  verified: Verification | undefined,
  restorableTo: string | undefined,
): string[] {
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
      [
        'restorableTo',
        restorableTo ? `the end of ${restorableTo} (the WAL archived without a gap)` : undefined,
      ],
      ['verified', verified ? `artifacts ok, ${verified.walSegments} WAL segments present` : undefined],
    ]),
    ...m.artifacts.map((a) => `artifact ${a.name}: ${a.bytes} bytes, sha256 ${a.sha256}`),
    ...copyLines(m),
  ];
}
