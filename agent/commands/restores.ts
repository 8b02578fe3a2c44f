/** `pgsnap restores list` and `pgsnap restores show ID`: the restore and drill records, from the repository. */
import { PreconditionError, UsageError } from '#domain/errors';
import { restoreIdPattern } from '#domain/ids';
import type { RestoreRecord } from '#domain/repository/restore-record';
import { parse } from '../cli/args.ts';
import { columns } from '../cli/output.ts';
import { recordLines } from '../cli/restore-lines.ts';
import { printUsage } from '../cli/usage.ts';
import { createOutput } from '../host/output.ts';
import { open, requireRepositoryChoice } from '../host/repository.ts';

export const restoresUsage = `pgsnap restores list [--json]
pgsnap restores show ID [--json]

Reads the restore records of --repo / PGSNAP_REPO for --cluster /
PGSNAP_CLUSTER: every restore and drill the restore state machine ran,
oldest first, with its outcome and RTO; show prints one with the timings of
every phase and what each check said.`;

export async function restoresCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('restores', args, {}, true);
  if (values.help) return printUsage(restoresUsage);
  const [action, ...rest] = positionals;
  const out = createOutput(values.json);
  if (action === 'list' && rest.length === 0) {
    const repository = await open(requireRepositoryChoice('restores', values));
    try {
      const ids = await repository.listRestoreIds();
      const records = (await Promise.all(ids.map((id) => repository.readRestoreRecord(id)))).filter(
        (r): r is RestoreRecord => r !== undefined,
      );
      out.result(
        { cluster: repository.cluster, restores: records },
        records.length === 0
          ? [`no restores of ${repository.cluster} in ${repository.store.url}`]
          : listLines(records),
      );
      return 0;
    } finally {
      repository.close();
    }
  }
  if (action === 'show' && rest.length === 1) {
    const restoreId = rest[0]!;
    if (!restoreIdPattern.test(restoreId)) {
      throw new UsageError(
        `${JSON.stringify(restoreId)} is not a restoreId; expected the form r-20261121T150000Z-a1b2c3`,
      );
    }
    const repository = await open(requireRepositoryChoice('restores', values));
    try {
      const record = await repository.readRestoreRecord(restoreId);
      if (!record) {
        throw new PreconditionError(
          `there is no restore ${restoreId} of ${repository.cluster} in ${repository.store.url}; pgsnap restores list shows those there are`,
        );
      }
      out.result({ ...record }, recordLines(record));
      return 0;
    } finally {
      repository.close();
    }
  }
  throw new UsageError('usage: pgsnap restores list | pgsnap restores show ID (see pgsnap restores --help)');
}

function listLines(records: RestoreRecord[]): string[] {
  const rows = records.map((r) => [
    r.restoreId,
    r.mode,
    r.state,
    r.backupId ?? '-',
    r.rtoSeconds !== undefined ? `${r.rtoSeconds.toFixed(0)}s` : '-',
    r.failure ? `${r.failure.error}: ${r.failure.reason}`.slice(0, 80) : '',
  ]);
  return columns(['RESTORE ID', 'MODE', 'STATE', 'BACKUP ID', 'RTO', 'FAILURE'], rows);
}
