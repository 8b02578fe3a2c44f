/** `pgsnap abort`: end the backup session without artifacts. */
import { messageOf, PreconditionError } from '#domain/errors';
import { recordEnded } from '../backup-catalog.ts';
import { parse } from '../cli-args.ts';
import { type Context, createContext } from '../context.ts';
import { request } from '../control.ts';
import { inspect } from '../inspect.ts';
import { table } from '../output.ts';
import { answeringStepFunctions, heartbeatIntervalMs, taskTokenFlag } from '../task-token.ts';
import { printUsage } from '../usage.ts';

export const abortUsage = `pgsnap abort [--reason R] [--task-token T [--heartbeat-seconds S]] [--json]

Ends the backup in progress here without keeping anything: the holder closes
its session and PostgreSQL leaves backup mode.`;

export async function abort(ctx: Context, reason: string): Promise<{ backupId: string; reason: string }> {
  const current = await inspect(ctx.state);
  if (current.kind === 'stopped') {
    // Backup mode already ended; discarding the hand-over is all that is left to do.
    const { backupId, label, startedAt } = current.stopped;
    ctx.state.writeOutcome({
      backupId,
      label,
      outcome: 'aborted',
      reason,
      at: new Date().toISOString(),
      startedAt,
    });
    ctx.state.clearStopped();
    ctx.state.unlock(backupId);
    await catalogAbort(ctx, backupId, reason);
    return { backupId, reason };
  }
  if (current.kind !== 'active') {
    throw new PreconditionError('no backup is in progress here; nothing to abort');
  }
  const answer = await request(ctx.state.socketPath, { op: 'abort', reason });
  if (answer && !answer.ok) throw new Error(answer.error.message);
  // Wait until the holder has closed its session, so that on return the server has left backup mode.
  const deadline = Date.now() + 15_000;
  while ((await inspect(ctx.state)).kind === 'active') {
    if (Date.now() > deadline)
      throw new Error(`the holder (pid ${current.session.holderPid}) did not stop within 15s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await catalogAbort(ctx, current.session.backupId, reason);
  return { backupId: current.session.backupId, reason };
}

/** The abort itself has happened; a catalog that cannot be updated is reported, not fatal. */
async function catalogAbort(ctx: Context, backupId: string, reason: string): Promise<void> {
  if (!ctx.repository) return;
  try {
    await recordEnded(ctx.repository, backupId, 'aborted', reason);
  } catch (error) {
    ctx.out.progress(
      `backup ${backupId} aborted, but its manifest still says otherwise: ${messageOf(error)}`,
    );
  }
}

export async function abortCommand(args: string[]): Promise<number> {
  const { values } = parse('abort', args, { reason: { type: 'string' }, ...taskTokenFlag });
  if (values.help) return printUsage(abortUsage);
  const ctx = createContext(values);
  const result = await answeringStepFunctions(
    values['task-token'],
    () => abort(ctx, values.reason ?? 'aborted by operator'),
    (aborted) => ({ aborted: true, ...aborted }),
    {
      progress: (message: string) => ctx.out.progress(message),
      heartbeatMs: heartbeatIntervalMs(values['heartbeat-seconds']),
    },
  );
  ctx.out.result(
    { aborted: true, ...result },
    table([
      ['aborted', result.backupId],
      ['reason', result.reason],
    ]),
  );
  return 0;
}
