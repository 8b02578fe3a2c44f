/** `pgsnap abort`: end the backup session without artifacts. */
import { validateBackupId } from '#domain/ids';
import { parse } from '../cli/args.ts';
import { table } from '../cli/output.ts';
import { printUsage } from '../cli/usage.ts';
import { createContext } from '../host/context.ts';
import {
  answeringStepFunctions,
  heartbeatIntervalMs,
  taskTokenFlag,
  taskTokenOf,
} from '../host/task-token.ts';
import { abort } from '../session/abort.ts';

export const abortUsage = `pgsnap abort [--backup-id ID] [--reason R] [--task-token-file F [--heartbeat-seconds S]] [--json]

Ends the backup in progress here without keeping anything: the holder closes
its session and PostgreSQL leaves backup mode.

With --backup-id, only that backup: when it is not in progress here (another
one is, or none), abort leaves everything as it is, says so and exits 0, and
for a backup that already ended it reports how. The state machine's cleanup
always names its backup, so it never aborts one it did not start.`;

export async function abortCommand(args: string[]): Promise<number> {
  const { values } = parse('abort', args, {
    reason: { type: 'string' },
    'backup-id': { type: 'string' },
    ...taskTokenFlag,
  });
  if (values.help) return printUsage(abortUsage);
  const ctx = createContext(values);
  const taskToken = taskTokenOf(values);
  // Answering the state machine, this host proposes; the orchestrator records the manifest.
  ctx.proposeOnly = taskToken !== undefined;
  const result = await answeringStepFunctions(
    taskToken,
    () =>
      abort(
        ctx,
        values.reason ?? 'aborted by operator',
        values['backup-id'] === undefined ? undefined : validateBackupId(values['backup-id']),
      ),
    (result) => ({ ...result }),
    {
      progress: (message: string) => ctx.out.progress(message),
      heartbeatMs: heartbeatIntervalMs(values['heartbeat-seconds']),
    },
  );
  ctx.out.result(
    { ...result },
    result.aborted
      ? table([
          ['aborted', result.backupId],
          ['reason', result.reason],
        ])
      : table([
          ['not aborted', result.backupId],
          ['note', result.note],
        ]),
  );
  return 0;
}
