/**
 * The SSM Command document through which the restore state machine runs the
 * agent on the restore's target host. It is apart from the backup's document
 * so that the restore state machine, which may run it on instances it
 * launches or is given, can run nothing on a host but a restore of one
 * recorded restore (`pgsnap restore --restore-id`) and its teardown
 * (`pgsnap unmount --restore-id`). The parameters are held to strict
 * patterns, as the backup's are (agent-document.ts). As there, the repository
 * is not one of them: the target restores only from the repository in its
 * own root-owned settings (PGSNAP_REPO in pgsnap.env), and only the record
 * whose digest the state machine passes (recordSha256).
 */
import type { Construct } from 'constructs';
import { clusterNamePattern, restoreIdPattern } from '#domain/ids';
import { recordDigestPattern } from '#domain/repository/restore-record';
import { defaultRecoverySeconds, maxHostStepSeconds } from '#domain/restore/host-time';
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
  recordSha256: {
    type: 'String',
    description:
      'The digest of the restore record as the state machine wrote it; the host refuses a record with any other.',
    allowedPattern: recordDigestPattern.source,
  },
  recoverySeconds: {
    type: 'String',
    description:
      "restore: how long the host waits for recovery (seconds); the state machine's step allows more (domain/restore/host-time.ts).",
    default: String(defaultRecoverySeconds),
    allowedPattern: '^[1-9][0-9]{0,5}$',
  },
  heartbeatSeconds: agentDocumentParameters.heartbeatSeconds,
  taskToken: agentDocumentParameters.taskToken,
} as const;

export type RestoreDocumentParameter = keyof typeof restoreDocumentParameters;

export const restoreDocumentScript = [
  ...agentDocumentPrelude,
  "case '{{ command }}' in",
  "  restore) set -- restore --restore-id '{{ restoreId }}' --recovery-timeout '{{ recoverySeconds }}' ;;",
  "  teardown) set -- unmount --restore-id '{{ restoreId }}' --stop-server ;;",
  'esac',
  // No --repo: the repository is root's PGSNAP_REPO (pgsnap.env, sourced above), never a document parameter.
  "exec pgsnap \"$@\" --record-sha256 '{{ recordSha256 }}' --cluster '{{ cluster }}' --heartbeat-seconds '{{ heartbeatSeconds }}' --json",
];

export class RestoreDocument extends PgsnapDocument {
  constructor(scope: Construct, id: string) {
    super(scope, id, {
      description: 'Runs the pgsnap agent for a restore driven by Step Functions (restore or teardown).',
      parameters: restoreDocumentParameters,
      script: restoreDocumentScript,
      // The longest SSM allows: the state machine's host step (sized per restore) is the one that ends it.
      timeoutSeconds: maxHostStepSeconds,
    });
  }
}
