/** `pgsnap begin`: start the holder and return once the server is in backup mode. */
import { messageOf, UsageError } from '#domain/errors';
import { parse } from '../cli/args.ts';
import { beginFlags, parseBeginOptions } from '../cli/begin-options.ts';
import { table } from '../cli/output.ts';
import { printUsage } from '../cli/usage.ts';
import { createContext } from '../host/context.ts';
import type { BackupSession } from '../host/state.ts';
import {
  answeringStepFunctions,
  heartbeatIntervalMs,
  taskTokenFlag,
  taskTokenOf,
} from '../host/task-token.ts';
import { begin } from '../session/begin.ts';
import type { Discovery } from '../volumes/block-devices.ts';

export const beginUsage = `pgsnap begin --label L [--fast] [--max-duration 1h] [--backup-id ID] [--volumes] [--task-token-file F [--heartbeat-seconds S]] [--json]

Starts a non-exclusive backup and returns once PostgreSQL is in backup mode.
The session is held by the agent service (pgsnap agent) when it runs, and
otherwise by a background process of its own (the holder). End it with
pgsnap end.

With a repository (--repo and --cluster, or PGSNAP_REPO and PGSNAP_CLUSTER),
the backup is catalogued there as started; a repository that belongs to
another cluster, or cannot be reached, aborts the backup at once. With a task
token (the state machine), begin writes no manifest: it proposes what it
started in its answer, and the state machine records it.`;

export function describeSession(session: BackupSession): Array<[string, unknown]> {
  return [
    ['backupId', session.backupId],
    ['label', session.label],
    ['startLsn', session.startLsn],
    ['startWalFile', session.startWalFile],
    ['timeline', session.timeline],
    ['systemIdentifier', session.systemIdentifier],
    ['walSegmentSize', session.segmentSize],
    ['serverVersion', session.serverVersion],
    ['startedAt', session.startedAt],
    ['backupFrom', session.fromStandby ? 'standby' : 'primary'],
    // What a restore target must match (pgsnap doctor --restore-target); the orchestrator records it.
    ['sharedPreloadLibraries', session.sharedPreloadLibraries],
    ['serverUid', session.serverUid],
    ['holderPid', session.holderPid],
    ['serverPid', session.serverPid],
    ['expiresAt', session.expiresAt],
  ];
}

export function beginDocument(session: BackupSession): Record<string, unknown> {
  return Object.fromEntries(describeSession(session).filter(([, value]) => value !== undefined));
}

export async function beginCommand(args: string[]): Promise<number> {
  const { values } = parse('begin', args, {
    ...beginFlags,
    ...taskTokenFlag,
    volumes: { type: 'boolean', default: false },
  });
  if (values.help) return printUsage(beginUsage);
  const ctx = createContext(values);
  const taskToken = taskTokenOf(values);
  // Answering the state machine, this host proposes; the orchestrator records the manifest.
  ctx.proposeOnly = taskToken !== undefined;
  // --volumes: also say which EBS volumes hold the cluster, for the state machine to snapshot.
  let volumes: Pick<Discovery, 'volumes' | 'problems'> | undefined;
  const document = (session: BackupSession) => ({ ...beginDocument(session), ...volumes });
  const session = await answeringStepFunctions(
    taskToken,
    async () => {
      if (values.label === undefined) {
        throw new UsageError('pgsnap begin: --label is required, e.g. pgsnap begin --label nightly');
      }
      const started = await begin(ctx, parseBeginOptions(values));
      if (values.volumes) {
        // The backup has started: a discovery that fails is reported, not allowed to fail begin.
        const { discover } = await import('../volumes/discover.ts');
        volumes = await discover().then(
          ({ volumes: found, problems }) => ({ volumes: found, problems }),
          (error: unknown) => ({ volumes: [], problems: [`pgsnap discover failed: ${messageOf(error)}`] }),
        );
      }
      return started;
    },
    document,
    {
      progress: (message: string) => ctx.out.progress(message),
      heartbeatMs: heartbeatIntervalMs(values['heartbeat-seconds']),
    },
  );
  ctx.out.result(document(session), table(describeSession(session)));
  return 0;
}
