/** How `pgsnap backups` shows a backup's snapshot set, its disaster-recovery copies and the restorable window. */
import type { RestorableWindow } from '#domain/backup/restorable-window';
import type { Manifest } from '#domain/repository/manifest';

/** Bytes as an operator reads them: 1.5 GiB, 312 MiB. */
export function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 || value >= 10 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/** One cell per backup: how many snapshots, by which provider (`2 btrfs`); `none` for a backup without. */
export function snapshotsSummary(manifest: Manifest): string {
  const providers = [...new Set(manifest.snapshots.map((s) => s.provider))];
  return manifest.snapshots.length === 0 ? 'none' : `${manifest.snapshots.length} ${providers.join('+')}`;
}

/** The snapshot set, one line per snapshot, with its size where the provider knows it. */
export function snapshotLines(manifest: Manifest, bytes: Array<number | undefined>): string[] {
  if (manifest.snapshots.length === 0) return ['snapshot set: none (this backup cannot be restored)'];
  return manifest.snapshots.map(
    (s, i) =>
      `snapshot ${s.snapshotId} (${s.provider}${s.role ? `, ${s.role}${s.tablespaceOid ? ` ${s.tablespaceOid}` : ''}` : ''}` +
      `${s.path ? ` of ${s.path}` : ''}${s.state ? `, ${s.state}` : ''}): ${formatBytes(bytes[i])}`,
  );
}

/** The window as `pgbackrest info` shows its archive range, with every gap named. */
export function windowLines(window: RestorableWindow | undefined, latestAt: string | undefined): string[] {
  if (!window) return ['restorable: nothing (no completed backup)'];
  const { earliest, latest } = window;
  return [
    `restorable from ${earliest.at ?? earliest.lsn} (LSN ${earliest.lsn}, the stop of backup ${earliest.backupId}) ` +
      `to LSN ${latest.endLsn} (the end of ${latest.segment}${latestAt ? `, archived ${latestAt}` : ''})`,
    ...window.gaps.map(
      (g) =>
        `WAL gap: ${g.first === g.last ? g.first : `${g.first} … ${g.last}`} missing (${g.segments} segment` +
        `${g.segments === 1 ? '' : 's'}): a restore of a backup before it stops there`,
    ),
    ...(window.unreachable
      ? [
          `WAL up to ${window.unreachable.segment} (LSN ${window.unreachable.endLsn}) is archived but past a gap: ` +
            'no backup reaches it until one is taken after the gap',
        ]
      : []),
  ];
}

/**
 * One cell per backup: each DR destination with its copies' states, e.g.
 * `444455556666/us-west-2 completed` or `…/us-west-2 pending 1/2 completed`;
 * `-` when the backup is not copied.
 */
export function copiesSummary(manifest: Manifest): string {
  const copies = manifest.copies ?? [];
  if (copies.length === 0) return '-';
  const destinations = new Map<string, string[]>();
  for (const copy of copies) {
    const key = `${copy.account}/${copy.region}`;
    destinations.set(key, [...(destinations.get(key) ?? []), copy.state]);
  }
  return [...destinations]
    .map(([destination, states]) => {
      const distinct = [...new Set(states)];
      if (distinct.length === 1) return `${destination} ${distinct[0]}`;
      const completed = states.filter((s) => s === 'completed').length;
      const open = distinct.filter((s) => s !== 'completed').join('/');
      return `${destination} ${open} ${completed}/${states.length} completed`;
    })
    .join(', ');
}

/** One line per copy, for `backups show`. */
export function copyLines(manifest: Manifest): string[] {
  return (manifest.copies ?? []).map(
    (c) =>
      `copy ${c.snapshotId ?? '(not started)'} of ${c.sourceSnapshotId} in ${c.account}/${c.region}: ${c.state}` +
      `${c.reason ? ` (${c.reason})` : ''}`,
  );
}
