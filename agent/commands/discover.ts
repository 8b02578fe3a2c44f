/** `pgsnap discover`: which volumes (EBS ids, devices, mounts) hold PGDATA, the tablespaces and pg_wal. */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { exitCodes } from '#domain/errors';
import { parse } from '../cli/args.ts';
import { createOutput } from '../cli/output.ts';
import { printUsage } from '../cli/usage.ts';
import { connect } from '../postgres/client.ts';
import {
  type ClusterPath,
  type Discovery,
  discoverVolumes,
  type FindmntOutput,
  type SysfsReader,
} from '../volumes/block-devices.ts';

export const discoverUsage = `pgsnap discover [--json]

Maps PGDATA, each tablespace and pg_wal to its mount, block device and the
disks under it (partitions, LVM, md), and each disk to its EBS volume id (from
the NVMe serial on Nitro instances). These are the volumes a backup snapshots.
Exits 3 when a part of the cluster is on a volume that cannot be snapshotted
or whose EBS id the host cannot tell.`;

/** PGDATA, pg_wal and every tablespace, with symlinks resolved, from the running server. */
async function clusterPaths(): Promise<ClusterPath[]> {
  const client = await connect({ applicationName: 'pgsnap discover' });
  try {
    const dataDir = (await client.query<{ dir: string }>("SELECT current_setting('data_directory') AS dir"))
      .rows[0]!.dir;
    const tablespaces = await client.query<{ name: string; location: string }>(
      "SELECT spcname AS name, pg_tablespace_location(oid) AS location FROM pg_tablespace WHERE pg_tablespace_location(oid) <> ''",
    );
    return [
      { role: 'pgdata', path: realpathSync(dataDir) },
      { role: 'pg_wal', path: realpathSync(join(dataDir, 'pg_wal')) },
      ...tablespaces.rows.map((t) => ({
        role: 'tablespace' as const,
        name: t.name,
        path: realpathSync(t.location),
      })),
    ];
  } finally {
    await client.end();
  }
}

function hostSysfs(root = '/sys'): SysfsReader {
  return {
    read(path) {
      try {
        return readFileSync(join(root, path), 'utf8');
      } catch {
        return undefined;
      }
    },
    list(path) {
      try {
        return readdirSync(join(root, path)).sort();
      } catch {
        return [];
      }
    },
  };
}

function findmnt(): FindmntOutput {
  const text = execFileSync('findmnt', ['--json', '--list', '--output', 'TARGET,SOURCE,FSTYPE,MAJ:MIN'], {
    encoding: 'utf8',
  });
  return JSON.parse(text) as FindmntOutput;
}

export async function discover(): Promise<Discovery> {
  return discoverVolumes(await clusterPaths(), findmnt(), hostSysfs());
}

export async function discoverCommand(args: string[]): Promise<number> {
  const { values } = parse('discover', args, {});
  if (values.help) return printUsage(discoverUsage);
  const out = createOutput(values.json);
  const found = await discover();
  const lines = found.paths.map(
    (p) =>
      `${p.role === 'tablespace' ? `tablespace ${p.name}` : p.role}: ${p.path} on ${p.mount} (${p.source}, ${p.fstype}) ` +
      `-> ${p.disks.map((d) => (d.volumeId ? `${d.disk} ${d.volumeId}` : d.disk)).join(', ')}`,
  );
  lines.push(`volumes: ${found.volumes.map((v) => v.volumeId).join(' ') || 'none known'}`);
  lines.push(...found.problems.map((problem) => `problem: ${problem}`));
  out.result({ ...found }, lines);
  if (found.problems.length === 0) return 0;
  out.progress(`${found.problems.length} part(s) of the cluster cannot be snapshotted as EBS volumes`);
  return exitCodes.precondition;
}
