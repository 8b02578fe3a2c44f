/** How busy the (shared) machine is: its load average and PSI stall times, printed beside the figures. */

import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';

/** The 1, 5 and 15 minute load averages, now or as read before. */
export function loadAverage(load: number[] = loadavg()): string {
  return load.map((n) => n.toFixed(2)).join(' ');
}

export interface Pressure {
  cpu: number;
  io: number;
}

/** Time (us) in which some task on the machine was stalled on CPU and on I/O (PSI, Linux 4.20+). */
export function pressure(): Pressure | undefined {
  try {
    const total = (resource: string) =>
      Number(/^some .*total=(\d+)/m.exec(readFileSync(`/proc/pressure/${resource}`, 'utf8'))?.[1]);
    return { cpu: total('cpu'), io: total('io') };
  } catch {
    return undefined;
  }
}

/** Stall shares of the window between two readings. */
export function stalled(
  from: Pressure | undefined,
  to: Pressure | undefined,
  ms: number,
): Pressure | undefined {
  if (!from || !to) return undefined;
  return { cpu: (to.cpu - from.cpu) / 1000 / ms, io: (to.io - from.io) / 1000 / ms };
}
