/**
 * The SSM Command document through which the state machine runs the agent on
 * the database host. SSM pastes parameter values into the script text, so
 * every parameter is held to a strict allowedPattern or allowedValues that
 * admits no quote, `$`, backquote, backslash or newline; each value is also
 * placed inside single quotes, so even a space stays one argument.
 *
 * The repository is not a parameter: the agent uses the one in root's own
 * settings (PGSNAP_REPO in /etc/pgsnap/pgsnap.env). Whoever may send a
 * command must not be able to point root at another repository (a file://
 * directory another user writes, another bucket) to restore or record from.
 */
import { CfnDocument } from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { labelPattern } from '#domain/backup/input';
import { backupIdPattern, clusterNamePattern } from '#domain/ids';

/** The document's parameters: what each admits is the interface between state machine and host. */
export const agentDocumentParameters = {
  command: {
    type: 'String',
    description: 'The agent command to run.',
    allowedValues: ['begin', 'end', 'abort'],
  },
  cluster: {
    type: 'String',
    description: 'The cluster, as named in the configuration.',
    allowedPattern: clusterNamePattern.source,
  },
  backupId: {
    type: 'String',
    description:
      "The backupId: the execution's name, or derived from its name and start time; begin, end and abort act only on it.",
    allowedPattern: backupIdPattern.source,
  },
  label: {
    type: 'String',
    description: 'Written into backup_label (begin).',
    default: 'pgsnap',
    allowedPattern: labelPattern.source,
  },
  fast: {
    type: 'String',
    description: 'Request an immediate checkpoint (begin).',
    default: 'false',
    allowedValues: ['true', 'false'],
  },
  maxDuration: {
    type: 'String',
    description: 'Past this the holder aborts the backup (begin), e.g. 60m.',
    default: '60m',
    allowedPattern: '^[1-9][0-9]{0,4}m$',
  },
  reason: {
    type: 'String',
    description: 'Why the backup is aborted (abort).',
    default: 'aborted by the state machine',
    allowedPattern: '^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,199}$',
  },
  heartbeatSeconds: {
    type: 'String',
    description:
      "The Task state's HeartbeatSeconds; the agent sends SendTaskHeartbeat three times within it.",
    allowedPattern: '^[1-9][0-9]{0,7}$',
  },
  taskToken: {
    type: 'String',
    description: 'The Step Functions task token the agent answers with SendTaskSuccess or SendTaskFailure.',
    allowedPattern: '^[A-Za-z0-9+/=][A-Za-z0-9+/=_-]{0,4095}$',
  },
} as const;

export type AgentDocumentParameter = keyof typeof agentDocumentParameters;

/** The line that names the settings file: the local run and the tests point it elsewhere. */
export const agentSettingsLine = 'settings=/etc/pgsnap/pgsnap.env';

/**
 * The script. `pgsnap` reads its connection settings (PGHOST, PGUSER, PGSNAP_REPO…)
 * from /etc/pgsnap/pgsnap.env, which the installation writes. Root sources
 * that file: one another user owns or may write (or whose directory they may
 * write) would run their commands as root, so it is refused.
 *
 * The task token goes to the agent in its environment, not as an argument:
 * a command line is readable by every local user (ps), an environment only
 * by root here. (SSM still keeps the parameter in its command history, and
 * the rendered script in its root-only orchestration directory.)
 */
export const agentDocumentPrelude = [
  'set -euo pipefail',
  'export PATH=/usr/local/bin:/usr/bin:/bin',
  agentSettingsLine,
  'if [ -e "$settings" ]; then',
  '  for p in "$settings" "$(dirname "$settings")"; do',
  '    if [ "$(stat -Lc %u "$p")" != 0 ] || [ $((0$(stat -Lc %a "$p") & 022)) != 0 ]; then',
  '      echo "pgsnap: refusing to source $settings: $p must belong to root and be writable by root only (chown root: $p; chmod go-w $p)" >&2',
  '      exit 3',
  '    fi',
  '  done',
  '  set -a; . "$settings"; set +a',
  'fi',
  "export PGSNAP_TASK_TOKEN='{{ taskToken }}'",
];

export const agentDocumentScript = [
  ...agentDocumentPrelude,
  "case '{{ command }}' in",
  "  begin) set -- begin --volumes --label '{{ label }}' --backup-id '{{ backupId }}' --max-duration '{{ maxDuration }}'",
  '         if [ \'{{ fast }}\' = true ]; then set -- "$@" --fast; fi ;;',
  // The state machine marks the manifest completed once the snapshots are; until then end leaves it stopped.
  // end and abort name the backup too: another one held on the host (an operator's) is never touched.
  "  end) set -- end --snapshots-pending --backup-id '{{ backupId }}' ;;",
  "  abort) set -- abort --backup-id '{{ backupId }}' --reason '{{ reason }}' ;;",
  'esac',
  // No --repo: the repository is root's PGSNAP_REPO (pgsnap.env, sourced above), never a document parameter.
  "exec pgsnap \"$@\" --cluster '{{ cluster }}' --heartbeat-seconds '{{ heartbeatSeconds }}' --json",
];

/**
 * An SSM Command document that runs `script` as root on an EC2 instance with
 * `parameters`: Run Command then refuses any target but an EC2 instance, the
 * only kind of database host pgsnap backs up or restores onto.
 */
export class PgsnapDocument extends Construct {
  readonly documentName: string;

  constructor(
    scope: Construct,
    id: string,
    props: { description: string; parameters: object; script: string[]; timeoutSeconds: number },
  ) {
    super(scope, id);
    const document = new CfnDocument(this, 'Document', {
      documentType: 'Command',
      targetType: '/AWS::EC2::Instance',
      documentFormat: 'JSON',
      updateMethod: 'NewVersion',
      content: {
        schemaVersion: '2.2',
        description: props.description,
        parameters: props.parameters,
        mainSteps: [
          {
            action: 'aws:runShellScript',
            name: 'runPgsnap',
            precondition: { StringEquals: ['platformType', 'Linux'] },
            inputs: { runCommand: props.script, timeoutSeconds: String(props.timeoutSeconds) },
          },
        ],
      },
    });
    this.documentName = document.ref;
  }
}

/** The backup's document: begin, end or abort of one backup. */
export class AgentDocument extends PgsnapDocument {
  constructor(scope: Construct, id: string) {
    super(scope, id, {
      description: 'Runs the pgsnap agent (begin, end or abort) for a backup driven by Step Functions.',
      parameters: agentDocumentParameters,
      script: agentDocumentScript,
      timeoutSeconds: 7200,
    });
  }
}
