/** What is in progress here and how the last backup ended: what pg_is_in_backup() once told. */
import { messageOf } from '#domain/errors';
import type { Context } from '../host/context.ts';
import { inspect } from './inspect.ts';
import { otherBackupSessions, type ServerBackupSession } from './server-sessions.ts';

/**
 * The pgsnap backup sessions on the server, whoever began them; undefined
 * (with why) when the server cannot be asked. Only asked when this state
 * directory knows of no backup: the one it knows is the one it reports.
 */
async function serverSessions(): Promise<{ sessions: ServerBackupSession[] } | { error: string }> {
  const { connect } = await import('../postgres/client.ts');
  try {
    const client = await connect({ applicationName: 'pgsnap status' });
    try {
      return { sessions: await otherBackupSessions(client) };
    } finally {
      await client.end().catch(() => {});
    }
  } catch (error) {
    return { error: messageOf(error) };
  }
}

/** A backup this state directory did not begin: another OS user's, another state directory's. */
function elsewhere(s: ServerBackupSession, last: unknown): Record<string, unknown> {
  return {
    inProgress: true,
    state: 'elsewhere',
    backupId: s.backupId,
    startedAt: s.since,
    serverPid: s.serverPid,
    role: s.role,
    ...(s.client ? { client: s.client } : {}),
    note:
      'begun by another user or with another state directory (PGSNAP_STATE_DIR): end or abort it there, ' +
      'or discard it with SELECT pg_terminate_backend(serverPid)',
    last,
  };
}

export async function status(ctx: Context): Promise<Record<string, unknown>> {
  const current = await inspect(ctx.state);
  if (current.kind === 'none' || current.kind === 'lost') {
    const last = current.outcome ?? null;
    const server = await serverSessions();
    // The backend of a backup this directory already recorded as ended can linger for a moment (one
    // waiting for its checkpoint leaves when it next checks its client): it is not a backup held elsewhere.
    const other =
      'sessions' in server ? server.sessions.find((s) => s.backupId !== last?.backupId) : undefined;
    if (other) return elsewhere(other, last);
    return {
      inProgress: false,
      last,
      ...('error' in server ? { server: `not asked: ${server.error}` } : {}),
    };
  }
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
        ...(s.state === 'starting' ? {} : { serverPid: s.serverPid, startLsn: s.startLsn }),
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
  }
}
