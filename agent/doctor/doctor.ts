/**
 * `pgsnap doctor`: every check that a backup and a restore from this host
 * will work, in the order an operator would fix them, each saying what to do.
 */
import { seconds } from '#domain/aws-timeouts';
import type { RetentionPolicy } from '#domain/backup/retention';
import { messageOf } from '#domain/errors';
import type { Repository } from '#domain/repository/repository';
import { type ArchiveHealth, sampleArchiveHealth } from '../metrics/archive-health.ts';
import { metricData } from '../metrics/cloudwatch.ts';
import { type Client, serverFacts } from '../postgres/client.ts';
import { preflight } from '../session/preflight.ts';
import { agentVersion } from '../version.ts';
import { type AwsClients, awsChecks } from './aws-checks.ts';
import { type CheckResult, fail, ok, skip } from './check.ts';
import { snapshotQuotaCheck } from './fleet-checks.ts';
import { clockCheck, type HostProbe, spoolSpaceCheck, ssmAgentCheck, volumesCheck } from './host-checks.ts';
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
  /**
   * With --fleet: the snapshots every cluster of the repository keeps, per Region, against EBS's quota,
   * projected with `policy` when given (fleet-checks.ts).
   */
  fleet?: { policy?: RetentionPolicy };
  /** Each check's time limit (default defaultCheckLimitMs). */
  checkLimitMs?: number;
  /** Told before each check (or group of checks) runs, so a slow one shows which it is. */
  onStart?: (check: string) => void;
  /** Told each result as soon as it is known. */
  onCheck?: (result: CheckResult) => void;
}

export interface DoctorReport {
  ok: boolean;
  agentVersion: string;
  checks: CheckResult[];
}

/** The oldest Node.js the agent runs on (package.json engines). */
const minNode = [20, 19];

export function versionCheck(): CheckResult {
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

/** Each check's time limit unless told otherwise: past it, the check fails and the next one runs. */
export const defaultCheckLimitMs = 60_000;

/**
 * A doctor check that did not finish within its time limit (PGSNAP_DOCTOR_CHECK_TIMEOUT): what it asks
 * (PostgreSQL, the repository, an AWS endpoint) accepted the request and never answered. The other checks
 * still run.
 *
 * What to do: Check the network path to what the check names, or raise PGSNAP_DOCTOR_CHECK_TIMEOUT for a
 * slow one.
 */
export class CheckTimeoutError extends Error {
  override name = 'CheckTimeoutError';
}

/** `work`, or a CheckTimeoutError once `limitMs` passes; `work` is left running (its clients are closed later). */
async function withinLimit<T>(check: string, limitMs: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new CheckTimeoutError(
            `${check}: no answer within ${seconds(limitMs)}, the time limit of each check ` +
              '(PGSNAP_DOCTOR_CHECK_TIMEOUT); check the network path to what it talks to',
          ),
        ),
      limitMs,
    );
  });
  try {
    return await Promise.race([work, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** The checks reported so far, and how to report and run more (each check within its time limit). */
export function checkRunner(options: Pick<DoctorOptions, 'checkLimitMs' | 'onStart' | 'onCheck'>) {
  const limitMs = options.checkLimitMs ?? defaultCheckLimitMs;
  const checks: CheckResult[] = [];
  const report = (...results: CheckResult[]) => {
    for (const result of results) {
      checks.push(result);
      options.onCheck?.(result);
    }
  };
  /**
   * Runs one check (or a group that shares its answers), within the time limit; its results are
   * reported as soon as they are known, and a failure or a timeout is the check's own result.
   */
  const step = async (check: string, work: () => Promise<CheckResult[]>, failed = fail): Promise<void> => {
    options.onStart?.(check);
    try {
      report(...(await withinLimit(check, limitMs, work())));
    } catch (error) {
      report(failed(check, messageOf(error)));
    }
  };
  return { checks, report, step, limitMs };
}

export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const { checks, report, step } = checkRunner(options);

  report(versionCheck());
  let client: Client | undefined;
  let connectionGivenUp = false;
  await step('connection', async () => {
    const connected = await options.connect();
    // A connection that comes after the limit is closed, not used.
    if (connectionGivenUp) {
      await connected.end().catch(() => {});
      return [];
    }
    client = connected;
    return [ok('connection', 'connected to PostgreSQL')];
  });
  connectionGivenUp = client === undefined;

  let sample: ReturnType<typeof metricData> | undefined;
  try {
    if (client) {
      const c = client;
      await step('preflight', async () => preflightChecks(await preflight(c)));
      await step('archive_command', async () => [await archiveCommandCheck(c, options.repository)]);
      let health: ArchiveHealth | undefined;
      await step('archiver', async () => {
        health = await sampleArchiveHealth(c, {
          ...(options.repository ? { cluster: options.repository.cluster } : {}),
          spoolRoot: options.spoolRoot,
        });
        return [archiverHealthCheck(health), await walRoomCheck(c, health)];
      });
      if (options.repository && health) sample = metricData(options.repository.cluster, health, 0);

      const named = options.repository;
      if (named) {
        await step(
          'repository.reachable',
          async () => {
            const facts = await serverFacts(c);
            const repository = await named.open();
            try {
              return await repositoryChecks(repository, {
                systemIdentifier: facts.systemIdentifier,
                walSegmentSize: facts.segmentSize,
                lastArchivedWal: health?.lastArchivedWal ?? null,
              });
            } finally {
              repository.close();
            }
          },
          (check, message) => fail(check, `cannot check ${named.url}: ${message}`),
        );
      }
    } else {
      report(
        skip('postgres', 'no connection: the settings, the archiver and the repository are not checked'),
      );
    }
    if (!options.repository) {
      report(
        fail(
          'repository',
          'no repository named: give --repo URL and --cluster NAME (or PGSNAP_REPO and PGSNAP_CLUSTER), ' +
            'the ones in archive_command, to check that WAL and backups can be read back',
        ),
      );
    }
  } finally {
    // A query a timed-out check left waiting must not keep doctor from finishing.
    if (client) await withinLimit('closing the connection', 2_000, client.end()).catch(() => {});
  }

  const fleet = options.fleet;
  const named = options.repository;
  if (fleet && named) {
    await step('snapshots.quota', async () => {
      const repository = await named.open();
      try {
        return await snapshotQuotaCheck(repository.store, fleet.policy);
      } finally {
        repository.close();
      }
    });
  }

  if (options.aws) {
    const policy = options.repository
      ? `the pgsnap host policy of ${options.repository.cluster} (pgsnap-<environment>-host-${options.repository.cluster})`
      : 'the pgsnap host policy of this cluster';
    const aws = options.aws;
    let clients: AwsClients | undefined;
    await step('aws.credentials', async () => {
      clients = await aws();
      return awsChecks(clients, policy, sample);
    });
    if (clients) for (const c of Object.values(clients)) c.destroy();
    await step('ssm-agent', async () => [ssmAgentCheck(options.host)]);
    await step('volumes', async () => [await volumesCheck(options.host)]);
  } else {
    report(skip('aws', 'not on AWS (--local): the instance role, the SSM agent and EBS are not checked'));
  }
  await step('spool', async () => [spoolSpaceCheck(options.spoolRoot)]);
  await step('clock', async () => [clockCheck(options.host)]);
  return { ok: !checks.some((c) => c.status === 'fail'), agentVersion, checks };
}
