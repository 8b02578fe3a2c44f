/** `pgsnap end`: stop the backup, confirm its WAL is archived, hand over the artifacts byte for byte. */
import { validateBackupId } from '#domain/ids';
import { parse } from '../cli/args.ts';
import { table } from '../cli/output.ts';
import { printUsage } from '../cli/usage.ts';
import { createContext } from '../host/context.ts';
import { settingsFrom } from '../host/settings.ts';
import {
  answeringStepFunctions,
  heartbeatIntervalMs,
  taskTokenFlag,
  taskTokenOf,
} from '../host/task-token.ts';
import { end, noSnapshotNote } from '../session/end.ts';

export const endUsage = `pgsnap end [--backup-id ID] [--snapshot REF...] [--output DIR] [--archive-timeout 10m] [--snapshots-pending] [--task-token-file F [--heartbeat-seconds S]] [--json]

Ends the backup started by pgsnap begin, waits until the stop segment and the
backup history file are archived, and writes backup_label, tablespace_map (when
non-empty) and the backup history file into DIR.

With a repository (--repo and --cluster, or PGSNAP_REPO and PGSNAP_CLUSTER),
end also checks that every WAL segment from start to stop is there, stores the
artifacts under backups/<backupId>/ and marks the manifest completed when a
snapshot is recorded for the backup: --snapshot REF (once per snapshot taken
while the backup ran), or a provider of pgsnap run. Without one the backup
stays stopped, with a note: never completed from end alone. If the
repository cannot be reached, the artifacts stay in the state directory and
pgsnap end can be run again. --snapshots-pending leaves the manifest stopped
for whoever waits for the snapshots to complete (the state machine). With a
task token (the state machine), end writes no manifest: it stores the
artifacts and proposes the stop in its answer, and the state machine records it.

With --backup-id, only that backup: when another one is in progress here,
end refuses (exit 3) naming both, and leaves the other one as it is. The
state machine always names its backup, so it never ends one it did not start.`;

export async function endCommand(args: string[]): Promise<number> {
  const { values } = parse('end', args, {
    output: { type: 'string' },
    'archive-timeout': { type: 'string' },
    'snapshots-pending': { type: 'boolean', default: false },
    'backup-id': { type: 'string' },
    snapshot: { type: 'string', multiple: true },
    ...taskTokenFlag,
  });
  if (values.help) return printUsage(endUsage);
  const ctx = createContext(values);
  const taskToken = taskTokenOf(values);
  // Answering the state machine, this host proposes; the orchestrator records the manifest.
  ctx.proposeOnly = taskToken !== undefined;
  const result = await answeringStepFunctions(
    taskToken,
    () =>
      end(ctx, {
        ...(values.output ? { output: values.output } : {}),
        archiveTimeoutMs: settingsFrom({ 'archive-timeout': values['archive-timeout'] }).archiveTimeoutMs,
        snapshotsPending: values['snapshots-pending'],
        ...(values['backup-id'] !== undefined ? { backupId: validateBackupId(values['backup-id']) } : {}),
        ...(values.snapshot?.length ? { snapshots: values.snapshot } : {}),
      }),
    (ended) => ({ ...ended }),
    {
      progress: (message: string) => ctx.out.progress(message),
      heartbeatMs: heartbeatIntervalMs(values['heartbeat-seconds']),
    },
  );
  const lines = table([
    ['backupId', result.backupId],
    ['startLsn', result.startLsn],
    ['stopLsn', result.stopLsn],
    ['stopWalFile', result.stopWalFile],
    ['backupFrom', result.backupFrom],
    ['manifest', result.manifest ? `${result.manifest.url} (${result.manifest.state})` : undefined],
  ]);
  for (const artifact of result.artifacts) {
    lines.push(
      `${artifact.name}: ${artifact.path ?? artifact.url ?? '(not written: no --output)'} sha256 ${artifact.sha256}`,
    );
    if (!artifact.path && !artifact.url)
      lines.push(
        ...artifact.content
          .trimEnd()
          .split('\n')
          .map((line) => `  ${line}`),
      );
  }
  // Outside the state machine and without --snapshots-pending, nothing will complete a stopped backup.
  const note =
    result.manifest?.state === 'stopped' && !taskToken && !values['snapshots-pending']
      ? noSnapshotNote(result.backupId)
      : undefined;
  if (note) lines.push(`note: ${note}`);
  ctx.out.result({ ...result, ...(note ? { note } : {}) }, lines);
  return 0;
}
