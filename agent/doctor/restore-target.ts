/**
 * `pgsnap doctor --restore-target`: on a restore or drill host (the drill
 * AMI), every check that a restore there needs, in the order an operator
 * builds the host: the agent; PostgreSQL of the source's major version where
 * the restore looks for it (PGSNAP_PG_BIN, else /usr/lib/postgresql/<major>/bin;
 * agent/restore/restored-server.ts findPgBin) with the libraries the source
 * preloads; the `postgres` user with the source's uid; the SSM agent; and
 * every AWS endpoint a restore's host talks to reachable from this subnet.
 * What the source needs comes from the repository's newest completed backup
 * of the cluster (its manifest records the server's version, preloaded
 * libraries and data directory owner), or from --major.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { messageOf } from '#domain/errors';
import type { Manifest } from '#domain/repository/manifest';
import { newestBackup } from '#domain/repository/newest';
import type { Repository } from '#domain/repository/repository';
import { agentVersion } from '../version.ts';
import { type CheckResult, fail, ok, skip, warn } from './check.ts';
import { checkRunner, type DoctorReport, versionCheck } from './doctor.ts';
import type { HostProbe } from './host-checks.ts';

/** What a restore here must match. */
export interface SourceNeeds {
  /** `15`, or `9.6` before 10. */
  major: string;
  sharedPreloadLibraries?: string[];
  uid?: number;
  /** Where the figures come from, for the messages. */
  from: string;
}

export interface RestoreTargetOptions {
  /** --major: the PostgreSQL major version to look for, without a repository. */
  major?: string;
  repository: { url: string; cluster: string; open: () => Promise<Repository> } | undefined;
  /** PGSNAP_PG_BIN, where the restore looks first for pg_ctl. */
  pgBin: string | undefined;
  /** Not on AWS (--local): the SSM agent and the endpoints are not checked. */
  local: boolean;
  env: NodeJS.ProcessEnv;
  host: HostProbe;
  /** The PATH the restore document runs pgsnap with (infra/backup/agent-document.ts). */
  documentPath?: string[];
  checkLimitMs?: number;
  onStart?: (check: string) => void;
  onCheck?: (result: CheckResult) => void;
}

/** The major version of a server_version (`15.10 (Debian …)` → 15, `9.6.24` → 9.6). */
export function majorOf(serverVersion: string): string {
  const match = /^(\d+)(?:\.(\d+))?/.exec(serverVersion.trim());
  if (!match) return serverVersion;
  return Number(match[1]) >= 10 ? match[1]! : `${match[1]}.${match[2] ?? 0}`;
}

export function needsOf(manifest: Manifest): SourceNeeds {
  return {
    major: majorOf(manifest.serverVersion),
    ...(manifest.server?.sharedPreloadLibraries
      ? { sharedPreloadLibraries: manifest.server.sharedPreloadLibraries }
      : {}),
    ...(manifest.server?.uid !== undefined ? { uid: manifest.server.uid } : {}),
    from: `backup ${manifest.backupId} of ${manifest.cluster} (PostgreSQL ${manifest.serverVersion})`,
  };
}

/**
 * The endpoints a restore's host talks to (service, endpoint prefix, why): the agent's calls and the SSM
 * agent's own (ssmmessages, ec2messages). `AWS_ENDPOINT_URL_<SERVICE>` or `AWS_ENDPOINT_URL` (as the AWS
 * SDKs read them) name another endpoint.
 */
const endpoints = [
  ['sts', 'sts', 'the instance role (GetCallerIdentity, credentials)'],
  ['s3', 's3', 'the repository: the restore record, backup_label, WAL'],
  ['ssm', 'ssm', 'the SSM agent: Run Command of the restore document'],
  ['ssmmessages', 'ssmmessages', "the SSM agent's command channel"],
  ['ec2messages', 'ec2messages', "the SSM agent's messages"],
  ['sfn', 'states', "the task token: answering the restore state machine's step"],
  ['kms', 'kms', "the repository's key (SSE-KMS objects)"],
  ['cloudwatch', 'monitoring', 'metrics'],
] as const;

export function endpointUrl(service: string, prefix: string, region: string, env: NodeJS.ProcessEnv): string {
  return (
    env[`AWS_ENDPOINT_URL_${service.toUpperCase()}`] ??
    env.AWS_ENDPOINT_URL ??
    `https://${prefix}.${region}.amazonaws.com`
  );
}

/** Any HTTP answer means the endpoint is reachable; only a connection that fails or hangs does not. */
async function reachable(url: string, limitMs: number): Promise<CheckResult['status'] | string> {
  try {
    const response = await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(limitMs) });
    await response.body?.cancel();
    return 'ok';
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause;
    return messageOf(cause ?? error);
  }
}

function agentInstalled(path: string[]): CheckResult {
  const found = path.map((dir) => join(dir, 'pgsnap')).find((file) => existsSync(file));
  if (!found) {
    return fail(
      'agent',
      `pgsnap is not in ${path.join(':')}, the PATH the restore document runs it with: install the agent ` +
        '(the release tarball, or npm run build:agent) as /usr/local/bin/pgsnap',
    );
  }
  return ok('agent', `${found} is what the restore document runs`);
}

function binariesCheck(needs: SourceNeeds, options: RestoreTargetOptions): [CheckResult, string?] {
  const system = `/usr/lib/postgresql/${needs.major}/bin`;
  const candidates = [options.pgBin, system].filter((dir): dir is string => Boolean(dir));
  const found = candidates.find(
    (dir) => existsSync(join(dir, 'pg_ctl')) && existsSync(join(dir, 'postgres')),
  );
  if (!found) {
    return [
      fail(
        'postgres.binaries',
        `no PostgreSQL ${needs.major} server (pg_ctl, postgres) in ${candidates.join(' or ')}, for ${needs.from}: ` +
          `install postgresql-${needs.major} (Debian/Ubuntu, from apt.postgresql.org) or postgresql${needs.major}-server ` +
          '(RHEL/Amazon Linux, from the PGDG repository), or set PGSNAP_PG_BIN to its bin directory',
      ),
    ];
  }
  const version = options.host.run(join(found, 'postgres'), ['--version']);
  const said = version?.stdout.trim() ?? '';
  const reported = /\(PostgreSQL\)\s+(\d+(?:\.\d+)?)/.exec(said)?.[1];
  if (version?.status !== 0 || !reported || majorOf(reported) !== needs.major) {
    return [
      fail(
        'postgres.binaries',
        `${found}/postgres --version says "${said || 'nothing'}", not PostgreSQL ${needs.major} (${needs.from}): ` +
          `install postgresql-${needs.major}, or set PGSNAP_PG_BIN to its bin directory`,
      ),
    ];
  }
  return [ok('postgres.binaries', `${said} in ${found}, as ${needs.from} needs`), found];
}

function librariesCheck(needs: SourceNeeds, bin: string, probe: HostProbe): CheckResult {
  if (needs.sharedPreloadLibraries === undefined) {
    return warn(
      'postgres.libraries',
      `${needs.from} does not say which libraries the source preloads (its backup role could not read ` +
        'shared_preload_libraries: grant it pg_read_all_settings); check them by hand',
    );
  }
  if (needs.sharedPreloadLibraries.length === 0) {
    return ok('postgres.libraries', 'the source preloads no library');
  }
  const pgConfig = probe.run(join(bin, 'pg_config'), ['--pkglibdir']);
  const libDir = pgConfig?.status === 0 ? pgConfig.stdout.trim() : join(bin, '..', 'lib');
  const missing = needs.sharedPreloadLibraries.filter((library) => {
    const name = library.replace(/^\$libdir\//, '');
    const file = name.startsWith('/') ? name : join(libDir, name.endsWith('.so') ? name : `${name}.so`);
    return !existsSync(file);
  });
  if (missing.length > 0) {
    return fail(
      'postgres.libraries',
      `the source preloads ${missing.join(', ')}, not in ${libDir}: the restored server would not start ` +
        `(shared_preload_libraries); install the packages that provide ${missing.length > 1 ? 'them' : 'it'} for ` +
        `PostgreSQL ${needs.major} (e.g. postgresql-${needs.major}-<extension>)`,
    );
  }
  return ok('postgres.libraries', `${needs.sharedPreloadLibraries.join(', ')} in ${libDir}`);
}

function uidCheck(needs: SourceNeeds, probe: HostProbe): CheckResult {
  const id = probe.run('id', ['-u', 'postgres']);
  if (id?.status !== 0) {
    return fail(
      'postgres.uid',
      `there is no postgres user here: the restored server runs as postgres; create it${needs.uid !== undefined ? ` with uid ${needs.uid} (useradd --system --uid ${needs.uid} postgres)` : ''}, or install the PostgreSQL packages`,
    );
  }
  const uid = Number(id.stdout.trim());
  if (needs.uid === undefined) {
    return warn('postgres.uid', `postgres is uid ${uid}; ${needs.from} does not record the source's uid`);
  }
  if (uid !== needs.uid) {
    return fail(
      'postgres.uid',
      `postgres is uid ${uid} here, ${needs.uid} on the source: the restored files belong to uid ${needs.uid} ` +
        `and the target refuses to start them as another user; build the image with usermod -u ${needs.uid} postgres ` +
        '(before any file is owned by it)',
    );
  }
  return ok('postgres.uid', `postgres is uid ${uid}, as on the source`);
}

/** The SSM agent, running or at least enabled to start (a drill AMI before its first boot). */
function ssmAgent(probe: HostProbe): CheckResult {
  if (probe.processNames().some((name) => name.startsWith('amazon-ssm-agen'))) {
    return ok('ssm-agent', 'the SSM agent runs: the restore state machine can reach this host');
  }
  for (const unit of ['amazon-ssm-agent', 'snap.amazon-ssm-agent.amazon-ssm-agent']) {
    const enabled = probe.run('systemctl', ['is-enabled', unit]);
    if (enabled?.status === 0) {
      return warn('ssm-agent', `the SSM agent is not running but ${unit} is enabled: it starts at boot`);
    }
  }
  return fail(
    'ssm-agent',
    'the SSM agent (amazon-ssm-agent) is neither running nor enabled, so the restore state machine cannot ' +
      'run the restore here: install it (snap install amazon-ssm-agent --classic, or the amazon-ssm-agent ' +
      'package) and systemctl enable --now amazon-ssm-agent',
  );
}

/** The source's needs: --major, else the newest completed backup of the cluster. */
async function sourceNeeds(options: RestoreTargetOptions): Promise<SourceNeeds> {
  if (options.major) return { major: options.major, from: `--major ${options.major}` };
  const named = options.repository;
  if (!named) {
    throw new Error(
      'no source to check against: give --repo URL and --cluster NAME (the newest backup tells the version), ' +
        'or --major N',
    );
  }
  const repository = await named.open();
  try {
    const { manifest } = await newestBackup(repository, (m) => m.state === 'completed');
    if (!manifest) {
      throw new Error(
        `${named.url} has no completed backup of ${named.cluster}: give --major N, or back the cluster up first`,
      );
    }
    return needsOf(manifest);
  } finally {
    repository.close();
  }
}

export async function runRestoreTargetDoctor(options: RestoreTargetOptions): Promise<DoctorReport> {
  const { checks, report, step, limitMs } = checkRunner(options);
  report(versionCheck());
  await step('agent', async () => [
    agentInstalled(options.documentPath ?? ['/usr/local/bin', '/usr/bin', '/bin']),
  ]);
  let needs: SourceNeeds | undefined;
  await step('source', async () => {
    needs = await sourceNeeds(options);
    return [
      ok(
        'source',
        `${needs.from}: PostgreSQL ${needs.major}` +
          `${needs.sharedPreloadLibraries ? `, shared_preload_libraries '${needs.sharedPreloadLibraries.join(',')}'` : ''}` +
          `${needs.uid !== undefined ? `, postgres uid ${needs.uid}` : ''}`,
      ),
    ];
  });
  if (needs) {
    const source = needs;
    let bin: string | undefined;
    await step('postgres.binaries', async () => {
      const [result, found] = binariesCheck(source, options);
      bin = found;
      return [result];
    });
    if (bin) {
      const found = bin;
      await step('postgres.libraries', async () => [librariesCheck(source, found, options.host)]);
    } else {
      report(skip('postgres.libraries', `no PostgreSQL ${source.major} binaries to look beside`));
    }
    await step('postgres.uid', async () => [uidCheck(source, options.host)]);
  }
  if (options.local) {
    report(skip('aws', 'not on AWS (--local): the SSM agent and the AWS endpoints are not checked'));
  } else {
    await step('ssm-agent', async () => [ssmAgent(options.host)]);
    const region = options.env.AWS_REGION ?? options.env.AWS_DEFAULT_REGION;
    for (const [service, prefix, why] of endpoints) {
      const name = `endpoint.${service}`;
      const url =
        region || options.env[`AWS_ENDPOINT_URL_${service.toUpperCase()}`] || options.env.AWS_ENDPOINT_URL
          ? endpointUrl(service, prefix, region ?? '', options.env)
          : undefined;
      if (!url) {
        report(fail(name, 'no region: set AWS_REGION (the region of the restore state machine)'));
        continue;
      }
      await step(name, async () => {
        const answer = await reachable(url, limitMs);
        return [
          answer === 'ok'
            ? ok(name, `${url} answers (${why})`)
            : fail(
                name,
                `${url} is not reachable (${answer}), needed for ${why}: give the subnet a route to it, a NAT ` +
                  `gateway or an interface VPC endpoint com.amazonaws.${region ?? '<region>'}.${prefix}` +
                  `${service === 's3' ? ' (or the S3 gateway endpoint)' : ''} with private DNS`,
              ),
        ];
      });
    }
  }
  return { ok: !checks.some((c) => c.status === 'fail'), agentVersion, checks };
}
