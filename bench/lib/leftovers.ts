/**
 * What a run interrupted mid-restore leaves below its work directory: a
 * restored server still running on a clone or a copy, and the bind mounts
 * the agent made (as root, `pgsnap mount` bind-mounts a local volume at its
 * mount point). Both are found below that directory only, so nothing else is touched.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { binDir, type Major } from '../../agent/restore/cluster.ts';

/** The postmasters whose data directory (their working directory) is below `dir`. */
function postmastersBelow(dir: string): Array<{ pid: number; pgdata: string }> {
  const found: Array<{ pid: number; pgdata: string }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cwd = realpathSync(`/proc/${entry}/cwd`);
      if (!cwd.startsWith(`${dir}/`)) continue;
      const pid = Number(readFileSync(join(cwd, 'postmaster.pid'), 'utf8').split('\n')[0]);
      if (pid === Number(entry)) found.push({ pid, pgdata: cwd });
    } catch {}
  }
  return found;
}

/** Stops (immediate) every server running on a data directory below `dir`, then unmounts what is mounted below it, newest first. */
export function removeLeftovers(dir: string, major: Major): void {
  for (const { pgdata } of postmastersBelow(dir)) {
    const pgCtl = join(binDir(major), 'pg_ctl');
    const args = ['-D', pgdata, '-m', 'immediate', '-w', 'stop'];
    if (process.getuid?.() === 0) spawnSync('runuser', ['-u', 'postgres', '--', pgCtl, ...args]);
    else spawnSync(pgCtl, args);
  }
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1]?.replaceAll('\\040', ' '))
    .filter((point): point is string => point?.startsWith(`${dir}/`) === true)
    // /proc/mounts lists mounts in the order they were made: a bind mount of a clone after the volume it is on.
    .reverse();
  for (const point of mounts) spawnSync('umount', ['-l', point]);
}
