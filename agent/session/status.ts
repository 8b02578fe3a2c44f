/** What is in progress here and how the last backup ended: what pg_is_in_backup() once told. */
import type { Context } from '../host/context.ts';
import { inspect } from './inspect.ts';

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
