/**
 * `pgsnap doctor`: every check that a backup and a restore from this host
 * will work, in the order an operator would fix them, each saying what to do.
 */
import { messageOf } from '#domain/errors';
import type { Repository } from '#domain/repository/repository';
import { sampleArchiveHealth } from '../metrics/archive-health.ts';
import { metricData } from '../metrics/cloudwatch.ts';
import { type Client, serverFacts } from '../postgres/client.ts';
import { preflight } from '../session/preflight.ts';
import { agentVersion } from '../version.ts';
import { type AwsClients, awsChecks } from './aws-checks.ts';
import { type CheckResult, fail, ok, skip } from './check.ts';
import { clockCheck, type HostProbe, ssmAgentCheck, volumesCheck } from './host-checks.ts';
import {
  archiveCommandCheck,
  archiverHealthCheck,
  preflightChecks,
  walRoomCheck,
} from './postgres-checks.ts';
import { repositoryChecks } from './repository-checks.ts';

export interface DoctorOptions {
  connect: () => Promise<Client>;
  /** The repository and the cluster's name in it (--repo, --cluster). */
  repository: { url: string; cluster: string; open: () => Promise<Repository> } | undefined;
  /** The state directory of wal-push --async, for the pusher's backlog. */
  spoolRoot: string;
  /** Undefined: not on AWS (--local), the AWS, SSM and EBS checks are skipped. */
  aws: (() => Promise<AwsClients>) | undefined;
  host: HostProbe;
}

export interface DoctorReport {
  ok: boolean;
  agentVersion: string;
  checks: CheckResult[];
}

/** The oldest Node.js the agent runs on (package.json engines). */
const minNode = [20, 19];

function versionCheck(): CheckResult {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  const text = `pgsnap ${agentVersion} on Node.js ${process.versions.node}`;
  if (major < minNode[0]! || (major === minNode[0] && minor < minNode[1]!)) {
    return fail(
      'version',
      `${text}: pgsnap needs Node.js ${minNode.join('.')} or later; install a newer Node.js`,
    );
  }
  return ok('version', text);
}

export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const checks: CheckResult[] = [versionCheck()];
  let client: Client | undefined;
  try {
    client = await options.connect();
    checks.push(ok('connection', 'connected to PostgreSQL'));
  } catch (error) {
    checks.push(fail('connection', messageOf(error)));
  }

  let sample: ReturnType<typeof metricData> | undefined;
  try {
    if (client) {
      const report = await preflight(client);
      checks.push(...preflightChecks(report));
      checks.push(await archiveCommandCheck(client, options.repository));
      const health = await sampleArchiveHealth(client, {
        ...(options.repository ? { cluster: options.repository.cluster } : {}),
        spoolRoot: options.spoolRoot,
      });
      checks.push(archiverHealthCheck(health), await walRoomCheck(client, health));
      if (options.repository) sample = metricData(options.repository.cluster, health, 0);

      if (options.repository) {
        const facts = await serverFacts(client);
        let repository: Repository | undefined;
        try {
          repository = await options.repository.open();
          checks.push(
            ...(await repositoryChecks(repository, {
              systemIdentifier: facts.systemIdentifier,
              walSegmentSize: facts.segmentSize,
              lastArchivedWal: health.lastArchivedWal,
            })),
          );
        } catch (error) {
          checks.push(
            fail('repository.reachable', `cannot open ${options.repository.url}: ${messageOf(error)}`),
          );
        } finally {
          repository?.close();
        }
      }
    } else {
      checks.push(
        skip('postgres', 'no connection: the settings, the archiver and the repository are not checked'),
      );
    }
    if (!options.repository) {
      checks.push(
        fail(
          'repository',
          'no repository named: give --repo URL and --cluster NAME (or PGSNAP_REPO and PGSNAP_CLUSTER), ' +
            'the ones in archive_command, to check that WAL and backups can be read back',
        ),
      );
    }
  } finally {
    await client?.end().catch(() => {});
  }

  if (options.aws) {
    const policy = options.repository
      ? `the pgsnap host policy of ${options.repository.cluster} (pgsnap-<environment>-host-${options.repository.cluster})`
      : 'the pgsnap host policy of this cluster';
    let clients: AwsClients | undefined;
    try {
      clients = await options.aws();
      checks.push(...(await awsChecks(clients, policy, sample)));
    } catch (error) {
      checks.push(fail('aws.credentials', messageOf(error)));
    } finally {
      if (clients) for (const c of Object.values(clients)) c.destroy();
    }
    checks.push(ssmAgentCheck(options.host), await volumesCheck(options.host));
    // With no AWS at all, the credentials, the SSM agent and EBS all fail: the likelier mistake is a host
    // that uses local providers and a file:// repository, checked without --local.
    const noCredentials = checks.find((c) => c.check === 'aws.credentials' && c.status === 'fail');
    if (noCredentials) {
      noCredentials.message +=
        '; or, on a host that is not on AWS (local snapshot providers, a file:// repository), run pgsnap doctor --local, which leaves out the AWS, SSM and EBS checks';
    }
  } else {
    checks.push(
      skip('aws', 'not on AWS (--local): the instance role, the SSM agent and EBS are not checked'),
    );
  }
  checks.push(clockCheck(options.host));
  return { ok: !checks.some((c) => c.status === 'fail'), agentVersion, checks };
}
