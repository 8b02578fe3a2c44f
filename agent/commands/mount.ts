/** `pgsnap mount`: on a restore's target host, the volumes made from a backup's snapshots, at their recorded places. */
import { parse } from '../cli/args.ts';
import { restoreIdOf } from '../cli/restore-id.ts';
import { printUsage } from '../cli/usage.ts';
import { createContext } from '../host/context.ts';
import { open, requireRepositoryChoice } from '../host/repository.ts';
import {
  answeringStepFunctions,
  heartbeatIntervalMs,
  taskTokenFlag,
  taskTokenOf,
} from '../host/task-token.ts';
import { mountRestore } from '../restore/mount-volumes.ts';

export const mountUsage = `pgsnap mount --restore-id R --cluster C --repo URL [--task-token-file F [--heartbeat-seconds S]] [--json]

Reads the restore record R from the repository and mounts each of its volumes
at (mountRoot) + the mount point it had on the source host, creating the
directory. A volume is found by its EBS id (the NVMe serial on Nitro
instances; the recorded partition of it when there is one), or, when
PGSNAP_LOCAL_VOLUMES names a local volumes file, as the entry with that id
(a directory is bound there as root, or linked there when not root).

XFS twins of a mounted file system (the same UUID) are mounted with nouuid.
A mount point with something else mounted, or with files in it, is refused
(MountPointInUseError); a file system over several volumes (LVM, md) is
refused. A volume already mounted there from the same device is left as it is.
With a task token (PGSNAP_TASK_TOKEN or --task-token-file) the answer goes to
Step Functions: SendTaskSuccess with {restoreId, mounts}, or SendTaskFailure
with the error's name.`;

export async function mountCommand(args: string[]): Promise<number> {
  const { values } = parse('mount', args, { 'restore-id': { type: 'string' }, ...taskTokenFlag });
  if (values.help) return printUsage(mountUsage);
  const restoreId = restoreIdOf('mount', values['restore-id']);
  const ctx = createContext(values);
  const repository = await open(requireRepositoryChoice('mount', values));
  try {
    const progress = (message: string) => ctx.out.progress(message);
    const mounts = await answeringStepFunctions(
      taskTokenOf(values),
      () => mountRestore(repository, restoreId),
      (placed) => ({ restoreId, mounts: placed }),
      { progress, heartbeatMs: heartbeatIntervalMs(values['heartbeat-seconds']) },
    );
    ctx.out.result(
      { restoreId, mounts },
      mounts.map(
        (m) =>
          `${m.volumeId}: ${m.device} ${m.already ? 'already at' : 'at'} ${m.mountPoint}${m.options ? ` (${m.options})` : ''}`,
      ),
    );
  } finally {
    repository.close();
  }
  return 0;
}
