/** `pgsnap discover`: which volumes (EBS ids, devices, mounts) hold PGDATA, the tablespaces and pg_wal. */
import { exitCodes } from '#domain/errors';
import { parse } from '../cli/args.ts';
import { printUsage } from '../cli/usage.ts';
import { createOutput } from '../host/output.ts';
import { discover } from '../volumes/discover.ts';

export const discoverUsage = `pgsnap discover [--json]

Maps PGDATA, each tablespace and pg_wal to its mount, block device and the
disks under it (partitions, LVM, md), and each disk to its EBS volume id (from
the NVMe serial on Nitro instances). These are the volumes a backup snapshots.
Exits 3 when a part of the cluster is on a volume that cannot be snapshotted
or whose EBS id the host cannot tell.`;

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
