/** `pgsnap status`: what pg_is_in_backup() and pg_backup_start_time() once told, for pgsnap's backups. */
import { formatDuration } from '#domain/backup/input';
import { parse } from '../cli/args.ts';
import { type Context, createContext } from '../cli/context.ts';
import { table } from '../cli/output.ts';
import { printUsage } from '../cli/usage.ts';
import { inspect } from '../session/inspect.ts';

export const statusUsage = `pgsnap status [--json]

Tells whether a backup is in progress here and how the last one ended.`;

export async function status(ctx: Context): Promise<Record<string, unknown>> {
  const current = await inspect(ctx.state);
  switch (current.kind) {
    case 'active': {
      const s = current.session;
      return {
        inProgress: true,
        state: s.state,
        backupId: s.backupId,
        label: s.label,
        startedAt: s.startedAt,
        elapsedMs: s.elapsedMs,
        expiresAt: s.expiresAt,
        holderPid: s.holderPid,
        serverPid: s.serverPid,
        startLsn: s.startLsn,
        last: ctx.state.readOutcome() ?? null,
      };
    }
    case 'stopped':
      return {
        inProgress: true,
        state: 'stopped',
        backupId: current.stopped.backupId,
        label: current.stopped.label,
        startedAt: current.stopped.startedAt,
        stoppedAt: current.stopped.stoppedAt,
        stopLsn: current.stopped.stopLsn,
        note: 'backup mode has ended; run pgsnap end to finish handing over the artifacts',
        last: ctx.state.readOutcome() ?? null,
      };
    case 'lost':
      return { inProgress: false, last: current.outcome };
    case 'none':
      return { inProgress: false, last: current.outcome ?? null };
  }
}

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
        ['stopLsn', doc.stopLsn],
        ['note', doc.note],
      ])
    : table([['in progress', 'no']]);
  if (last)
    lines.push(...table([['last backup', `${last.backupId} ${last.outcome} at ${last.at}: ${last.reason}`]]));
  ctx.out.result(doc, lines);
  return 0;
}
