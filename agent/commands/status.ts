/** `pgsnap status`: what pg_is_in_backup() and pg_backup_start_time() once told, for pgsnap's backups. */
import { formatDuration } from '#domain/backup/input';
import { parse } from '../cli/args.ts';
import { table } from '../cli/output.ts';
import { printUsage } from '../cli/usage.ts';
import { createContext } from '../host/context.ts';
import { status } from '../session/status.ts';

export const statusUsage = `pgsnap status [--json]

Tells whether a backup is in progress here and how the last one ended. When
this state directory knows of none, the server is asked (PG* settings) for a
pgsnap backup begun by another user or with another state directory.`;

export async function statusCommand(args: string[]): Promise<number> {
  const { values } = parse('status', args, {});
  if (values.help) return printUsage(statusUsage);
  const ctx = createContext(values);
  const doc = await status(ctx);
  const last = doc.last as { backupId: string; outcome: string; reason: string; at: string } | null;
  const lines = doc.inProgress
    ? table([
        ['in progress', `yes (${doc.state})`],
        ['backupId', doc.backupId],
        ['label', doc.label],
        ['startedAt', doc.startedAt],
        ['elapsed', typeof doc.elapsedMs === 'number' ? formatDuration(doc.elapsedMs) : undefined],
        ['expiresAt', doc.expiresAt],
        ['holderPid', doc.holderPid],
        ['serverPid', doc.serverPid],
        ['role', doc.role],
        ['client', doc.client],
        ['stopLsn', doc.stopLsn],
        ['note', doc.note],
      ])
    : table([['in progress', 'no']]);
  if (last)
    lines.push(...table([['last backup', `${last.backupId} ${last.outcome} at ${last.at}: ${last.reason}`]]));
  ctx.out.result(doc, lines);
  return 0;
}
