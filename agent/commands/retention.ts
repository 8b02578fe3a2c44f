/** `pgsnap retention`: apply a retention policy to a repository (snapshots, artifacts, manifests, WAL). */

import {
  applyRetention,
  type RetentionPolicy,
  type SnapshotDeleter,
  validatePolicy,
} from '#domain/backup/retention';
import { UsageError } from '#domain/errors';
import type { Manifest } from '#domain/repository/manifest';
import { parse } from '../cli/args.ts';
import { table } from '../cli/output.ts';
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

/** `--thin H,D,W,M`: hours, days, weeks, months; a missing trailing field is 0. */
function thinningFrom(text: string | undefined): RetentionPolicy['thin'] {
  if (text === undefined) return undefined;
  if (!/^\d+(,\d+){0,3}$/.test(text))
    throw new UsageError(`--thin takes H,D,W,M (e.g. 24,7,4,12); got ${JSON.stringify(text)}`);
  const [hours = 0, days = 0, weeks = 0, months = 0] = text.split(',').map(Number);
  return { hours, days, weeks, months };
}

function policyFrom(values: { 'keep-last'?: string; 'keep-days'?: string; thin?: string }): RetentionPolicy {
  const number = (flag: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    const value = Number(text);
    if (!/^\d+(\.\d+)?$/.test(text))
      throw new UsageError(`--${flag} takes a number; got ${JSON.stringify(text)}`);
    return value;
  };
  const keepLast = number('keep-last', values['keep-last']);
  const keepDays = number('keep-days', values['keep-days']);
  const thin = thinningFrom(values.thin);
  return validatePolicy({
    ...(keepLast !== undefined ? { keepLast } : {}),
    ...(keepDays !== undefined ? { keepDays } : {}),
    ...(thin !== undefined ? { thin } : {}),
  });
}

export async function retentionCommand(args: string[]): Promise<number> {
  const { values } = parse('retention', args, {
    'keep-last': { type: 'string' },
    'keep-days': { type: 'string' },
    thin: { type: 'string' },
    'dry-run': { type: 'boolean', default: false },
    repo: { type: 'string' },
  });
  if (values.help) return printUsage(retentionUsage);
  const policy = policyFrom(values);
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
