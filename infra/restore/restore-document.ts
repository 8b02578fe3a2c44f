/**
 * The SSM Command document through which the restore state machine runs the
 * agent on the restore's target host. It is apart from the backup's document
 * so that the restore state machine, which may run it on instances it
 * launches or is given, can run nothing on a host but a restore of one
 * recorded restore (`pgsnap restore --restore-id`) and its teardown
 * (`pgsnap unmount --restore-id`). The parameters are held to strict
 * patterns, as the backup's are (agent-document.ts).
 */
import type { Construct } from 'constructs';
import { clusterNamePattern, restoreIdPattern } from '#domain/ids';
import { agentDocumentParameters, agentDocumentPrelude, PgsnapDocument } from '../backup/agent-document.ts';

export const restoreDocumentParameters = {
  command: {
    type: 'String',
    description: 'restore: mount, recover, start and check; teardown: stop the server and unmount.',
    allowedValues: ['restore', 'teardown'],
  },
  cluster: {
    type: 'String',
    description: 'The cluster, as named in the configuration.',
    allowedPattern: clusterNamePattern.source,
  },
  restoreId: {
    type: 'String',
    description: 'The restore, whose record in the repository says what to mount and recover.',
    allowedPattern: restoreIdPattern.source,
  },
  repository: agentDocumentParameters.repository,
  heartbeatSeconds: agentDocumentParameters.heartbeatSeconds,
  taskToken: agentDocumentParameters.taskToken,
} as const;

export type RestoreDocumentParameter = keyof typeof restoreDocumentParameters;

export const restoreDocumentScript = [
  ...agentDocumentPrelude,
  "case '{{ command }}' in",
  "  restore) set -- restore --restore-id '{{ restoreId }}' ;;",
  "  teardown) set -- unmount --restore-id '{{ restoreId }}' --stop-server ;;",
  'esac',
  "exec pgsnap \"$@\" --cluster '{{ cluster }}' --repo '{{ repository }}' --heartbeat-seconds '{{ heartbeatSeconds }}' --json",
];

export class RestoreDocument extends PgsnapDocument {
  constructor(scope: Construct, id: string) {
    super(scope, id, {
      description: 'Runs the pgsnap agent for a restore driven by Step Functions (restore or teardown).',
      parameters: restoreDocumentParameters,
      script: restoreDocumentScript,
      // A restore recovers as much WAL as the target needs: up to the restore's own timeout (4 h by default).
      timeoutSeconds: 28800,
    });
  }
}
