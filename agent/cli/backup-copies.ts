/** How `pgsnap backups` shows a backup's disaster-recovery copies. */
import type { Manifest } from '#domain/repository/manifest';

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
