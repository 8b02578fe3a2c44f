/** The host: the SSM agent that runs the state machine's commands, the volumes under the cluster, the clock. */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statfsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { messageOf } from '#domain/errors';
import type { Discovery } from '../volumes/block-devices.ts';
import { type CheckResult, fail, ok, warn } from './check.ts';

/** What the host checks read, replaceable in tests. */
export interface HostProbe {
  /** The command names (/proc/<pid>/comm) of the running processes. */
  processNames(): string[];
  /** Runs a program; undefined when it is not installed. */
  run(file: string, args: string[]): { status: number | null; stdout: string } | undefined;
  discover(): Promise<Discovery>;
}

export function procProcessNames(root = '/proc'): string[] {
  const names: string[] = [];
  for (const entry of readdirSync(root)) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      names.push(readFileSync(join(root, entry, 'comm'), 'utf8').trim());
    } catch {
      // Gone meanwhile.
    }
  }
  return names;
}

export function runProgram(file: string, args: string[]) {
  const result = spawnSync(file, args, { encoding: 'utf8', timeout: 10_000 });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return undefined;
  return { status: result.status, stdout: result.stdout ?? '' };
}

export function ssmAgentCheck(probe: HostProbe): CheckResult {
  // comm is cut at 15 characters: amazon-ssm-agent reads as amazon-ssm-agen.
  if (probe.processNames().some((name) => name.startsWith('amazon-ssm-agen'))) {
    return ok('ssm-agent', 'the SSM agent runs: the state machine can reach this host');
  }
  return fail(
    'ssm-agent',
    'the SSM agent (amazon-ssm-agent) is not running, so the backup state machine cannot run begin and end ' +
      'here: systemctl enable --now amazon-ssm-agent (snap.amazon-ssm-agent.amazon-ssm-agent where it came as a snap), ' +
      'and check that the instance shows as managed in Systems Manager Fleet Manager',
  );
}

export async function volumesCheck(probe: HostProbe): Promise<CheckResult> {
  let found: Discovery;
  try {
    found = await probe.discover();
  } catch (error) {
    return fail('volumes', `cannot tell which volumes hold the cluster: ${messageOf(error)}`);
  }
  if (found.problems.length > 0) {
    return fail(
      'volumes',
      `${found.problems.join('; ')}. A snapshot backup needs PGDATA, every tablespace and pg_wal on EBS volumes ` +
        '(see pgsnap discover)',
    );
  }
  return ok(
    'volumes',
    `every part of the cluster is on EBS: ${found.volumes.map((v) => v.volumeId).join(', ')}`,
  );
}

export function clockCheck(probe: HostProbe): CheckResult {
  const timedatectl = probe.run('timedatectl', ['show', '--property', 'NTPSynchronized', '--value']);
  if (timedatectl?.status === 0) {
    if (timedatectl.stdout.trim() === 'yes') return ok('clock', 'the clock is synchronized (timedatectl)');
    return fail(
      'clock',
      'the clock is not synchronized (timedatectl: NTPSynchronized=no): recovery targets, backupIds and ' +
        'signed AWS requests depend on it; enable chronyd or systemd-timesyncd (169.254.169.123 on EC2)',
    );
  }
  const chronyc = probe.run('chronyc', ['tracking']);
  if (chronyc?.status === 0) {
    if (/Leap status\s*:\s*Normal/.test(chronyc.stdout))
      return ok('clock', 'the clock is synchronized (chronyc)');
    return fail('clock', `chrony is not synchronized: ${chronyc.stdout.trim().split('\n').at(-1)}`);
  }
  return warn(
    'clock',
    'cannot tell whether the clock is synchronized (neither timedatectl nor chronyc answered); ' +
      'recovery targets and signed AWS requests depend on it',
  );
}

/** Below this, the async spool is about to refuse its status files (a few hundred bytes per WAL file). */
const spoolLowBytes = 64 * 1024 * 1024;

/**
 * The room left where wal-push --async keeps its status files: with none, every
 * archive_command fails (ENOSPC) until space is freed.
 */
export function spoolSpaceCheck(spoolRoot: string): CheckResult {
  let dir = spoolRoot;
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  let free: number;
  try {
    const fs = statfsSync(dir);
    free = fs.bavail * fs.bsize;
  } catch (error) {
    return warn('spool', `cannot tell the free space of ${spoolRoot}: ${messageOf(error)}`);
  }
  const mib = (free / 1024 / 1024).toFixed(1);
  if (free < 1024 * 1024) {
    return fail(
      'spool',
      `${spoolRoot} (wal-push --async's spool) has ${mib} MiB free: archive_command fails there; free space ` +
        'or give --spool-dir a directory on another file system',
    );
  }
  if (free < spoolLowBytes) {
    return warn('spool', `${spoolRoot} (wal-push --async's spool) has only ${mib} MiB free`);
  }
  return ok('spool', `${spoolRoot} (wal-push --async's spool) has ${mib} MiB free`);
}
