/** `pgsnap retention`: apply a retention policy to a repository (snapshots, artifacts, manifests, WAL). */

import { applyRetention, type SnapshotDeleter, validatePolicy } from '#domain/backup/retention';
import type { Manifest } from '#domain/repository/manifest';
import { parse } from '../cli/args.ts';
import { table } from '../cli/output.ts';
import { policyFrom, retentionFlags } from '../cli/retention-flags.ts';
import { progressOutput } from '../cli/terminal-progress.ts';
import { printUsage } from '../cli/usage.ts';
import { awsClientConfig } from '../host/aws-timeouts.ts';
import { createContext } from '../host/context.ts';
import { open, requireRepositoryChoice } from '../host/repository.ts';
import { createProvider, localProviders } from '../providers/create.ts';

export const retentionUsage = `pgsnap retention [--keep-last N] [--keep-days D] [--thin H,D,W,M] [--dry-run] --repo URL --cluster NAME [--json]

Keeps the last N completed backups, those younger than D days, and/or one
backup per hour for H hours, per day for D days, per week for W weeks and per
month for M months (--thin 24,7,4,12; at least one rule is needed), and
always the newest completed backup, backups in progress and backups with a
locked snapshot. Deletes the others (snapshots, then artifacts, then the
manifest) and the WAL older than the oldest kept backup's start; timeline
history files stay. --dry-run lists what would go and deletes nothing.`;

/** Deletes a backup's snapshots with the provider that took them; a locked EBS snapshot is reported, not an error. */
const deleteSnapshots: SnapshotDeleter = async (manifest: Manifest) => {
  const live = manifest.snapshots.filter((s) => s.state !== 'deleted');
  const locked: string[] = [];
  const local = live.filter((s) => localProviders.includes(s.provider));
  if (local.length > 0) {
    const provider = await createProvider(local[0]!.provider, {}, 'restore');
    await provider.delete(
      local.map((s) => ({ role: s.role ?? 'data', source: s.path ?? '', snapshot: s.snapshotId })),
    );
  }
  const ebs = live.filter((s) => s.provider === 'ebs');
  if (ebs.length > 0) {
    const { EC2Client } = await import('@aws-sdk/client-ec2');
    const { deleteSnapshotUnlessLocked } = await import('#domain/ebs/delete-snapshots');
    const ec2 = new EC2Client(awsClientConfig());
    try {
      for (const s of ebs) {
        if ((await deleteSnapshotUnlessLocked(ec2, s.snapshotId)) === 'locked') locked.push(s.snapshotId);
      }
    } finally {
      ec2.destroy();
    }
  }
  return { locked };
};

export async function retentionCommand(args: string[]): Promise<number> {
  const { values } = parse('retention', args, {
    ...retentionFlags,
    'dry-run': { type: 'boolean', default: false },
    repo: { type: 'string' },
  });
  if (values.help) return printUsage(retentionUsage);
  const policy = validatePolicy(policyFrom(values) ?? {});
  const ctx = createContext(values);
  const out = progressOutput(ctx.out);
  const repository = await open(requireRepositoryChoice('retention', values));
  try {
    const result = await applyRetention(repository, {
      policy,
      dryRun: values['dry-run'],
      deleteSnapshots,
      progress: out.progress,
    });
    const verb = values['dry-run'] ? 'would delete' : 'deleted';
    out.result({ dryRun: values['dry-run'], policy, ...result }, [
      ...result.keep.map((k) => `keep    ${k.backupId} (${k.state}, ${k.reason})`),
      ...result.remove.map((r) => `${verb.padEnd(7)} ${r.backupId} (${r.state})`),
      ...result.lockedSnapshots.map((l) => `locked  ${l.backupId}: ${l.snapshotIds.join(', ')} (kept)`),
      ...table([
        [
          'WAL',
          `${verb} ${result.removeWal.length} file(s)${result.walFrom ? `; kept from ${result.walFrom}` : ''}`,
        ],
      ]),
    ]);
    return 0;
  } finally {
    out.stop();
    repository.close();
  }
}
