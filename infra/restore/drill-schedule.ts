/**
 * When a cluster's scheduled drill falls. A drill launches an instance,
 * creates volumes from a backup's snapshots and reads every block: a fleet's
 * drills all due in the same hour would hit the Region's CreateVolume and
 * RunInstances budgets at once. A drill given as `rate(7 days)` (or
 * `rate(1 day)`) has no time of its own (Scheduler counts a rate from the
 * schedule's creation, the same deploy for every cluster): it is spread by the
 * cluster's name, a hash of it choosing the day of the week and the hour (and
 * the minute), the same at every synth. Scheduler's flexible window then moves
 * each start by up to its drills.flexibleWindowMinutes. A cron() expression is
 * the operator's choice and is kept as it is.
 */
import { createHash } from 'node:crypto';

const days = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'] as const;

/** Where `cluster`'s drills fall in the week: a day, an hour and a minute from a digest of its name. */
export function drillSlot(cluster: string): { day: (typeof days)[number]; hour: number; minute: number } {
  const digest = createHash('sha256').update(`drill ${cluster}`, 'utf8').digest();
  const hourOfWeek = digest.readUInt32BE(0) % (7 * 24);
  return {
    day: days[Math.floor(hourOfWeek / 24)]!,
    hour: hourOfWeek % 24,
    minute: digest.readUInt32BE(4) % 60,
  };
}

/** The Scheduler expression of `cluster`'s drills: a weekly or daily rate spread by its name, a cron kept. */
export function drillExpression(cluster: string, expression: string): string {
  const { day, hour, minute } = drillSlot(cluster);
  if (/^rate\((7 days|1 week)\)$/.test(expression)) return `cron(${minute} ${hour} ? * ${day} *)`;
  if (/^rate\((1 day|24 hours)\)$/.test(expression)) return `cron(${minute} ${hour} * * ? *)`;
  return expression;
}
