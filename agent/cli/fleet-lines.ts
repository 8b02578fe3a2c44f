/** `pgsnap backups list --all` for people: one row per cluster of the repository. */
import type { ClusterView } from '#domain/backup/fleet-view';
import { columns } from './output.ts';

/** `3d 4h`, `2h 5m`, `40s`: the two largest units of a duration in seconds. */
export function formatAge(seconds: number): string {
  const units: Array<[string, number]> = [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ];
  let rest = Math.max(0, Math.round(seconds));
  const parts: string[] = [];
  for (const [unit, size] of units) {
    const count = Math.floor(rest / size);
    rest -= count * size;
    if (parts.length > 0 || count > 0) parts.push(`${count}${unit}`);
  }
  const [first, second] = parts;
  if (!first) return '0s';
  return second && !second.startsWith('0') ? `${first} ${second}` : first;
}

function drLine(view: ClusterView): string {
  if (view.dr.state === 'not-copied') return 'not copied';
  if (!view.dr.newestInDr) return 'none in DR yet';
  if (view.dr.lagSeconds === undefined) return `newest ${formatAge(view.dr.newestInDr.ageSeconds)} old`;
  return view.dr.lagSeconds === 0 ? 'caught up' : `${formatAge(view.dr.lagSeconds)} behind`;
}

export function fleetLines(url: string, views: ClusterView[], rpoHours: number | undefined): string[] {
  if (views.length === 0) return [`no clusters in ${url} (no <cluster>/cluster.json)`];
  const rows = views.map((v) => [
    v.cluster,
    v.newest?.backupId ?? 'none',
    v.newest ? formatAge(v.newest.ageSeconds) : '-',
    v.overRpo === undefined ? '-' : v.overRpo ? `OVER ${rpoHours}h` : `ok (${rpoHours}h)`,
    drLine(v),
    v.lastDrill ? `${formatAge(v.lastDrill.days * 86_400)} ago (${v.lastDrill.restoreId})` : 'never',
  ]);
  return [
    ...columns(['CLUSTER', 'NEWEST COMPLETED', 'AGE', 'RPO', 'DR COPIES', 'LAST DRILL'], rows),
    '',
    `${views.length} cluster(s) in ${url}` +
      (rpoHours === undefined
        ? "; RPO: the repository does not hold it (it is the deployment's rpoHours): give --rpo-hours H to compare"
        : `; ${views.filter((v) => v.overRpo).length} over the ${rpoHours}-hour RPO`),
  ];
}
