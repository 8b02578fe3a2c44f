/**
 * What a restore drill checks on a restored cluster, the way an operator
 * would: recovery reached consistency, every table and index reads back
 * (pg_amcheck --heapallindexed), and, with data checksums on, every page's
 * checksum after a clean shutdown (pg_checksums --check).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { asPostgres, type Cluster, clientBin } from './cluster.ts';

export interface DataCheck {
  consistent: boolean;
  amcheck: 'passed' | 'failed' | 'not available';
  checksums: 'passed' | 'failed' | 'off' | 'not available';
  /** Tables over every database that takes connections. */
  tables: number;
  databases: number;
  /** The tools' complaints, when a check failed. */
  problems: string[];
  ok: boolean;
}

/**
 * pg_amcheck (14+) with --heapallindexed on the running cluster, as the server's user;
 * undefined when the tool or the server's version cannot do it.
 */
export function runAmcheck(
  cluster: Pick<Cluster, 'clientArgs' | 'major'>,
  scope: string[] = ['-d', 'postgres'],
  options: { installMissing?: boolean } = {},
): { ok: boolean; output: string } | undefined {
  const amcheckBin = clientBin('pg_amcheck');
  if (!amcheckBin || cluster.major < 14) return undefined;
  // A standby cannot CREATE EXTENSION: there amcheck must come from the primary.
  const install = options.installMissing === false ? [] : ['--install-missing'];
  const result = asPostgres(amcheckBin, [...cluster.clientArgs, ...scope, ...install, '--heapallindexed'], {
    allowFailure: true,
  });
  return { ok: result.status === 0, output: (result.stdout + result.stderr).trim() };
}

/**
 * runAmcheck without blocking: on a restore's target host pg_amcheck may run
 * for hours, and the task token's heartbeats must go on meanwhile.
 */
export function runAmcheckInBackground(
  cluster: Pick<Cluster, 'clientArgs' | 'major'>,
  scope: string[],
  options: { installMissing?: boolean } = {},
): Promise<{ ok: boolean; output: string } | undefined> {
  const amcheckBin = clientBin('pg_amcheck');
  if (!amcheckBin || cluster.major < 14) return Promise.resolve(undefined);
  const install = options.installMissing === false ? [] : ['--install-missing'];
  const args = [...cluster.clientArgs, ...scope, ...install, '--heapallindexed'];
  const [command, commandArgs] =
    process.getuid?.() === 0
      ? ['runuser', ['-u', 'postgres', '--', amcheckBin, ...args]]
      : [amcheckBin, args];
  return new Promise((resolve) => {
    execFile(command, commandArgs, { cwd: '/', maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ ok: !error, output: `${stdout}${stderr}`.trim() });
    });
  });
}

/** Runs the checks; stops the cluster (cleanly, as pg_checksums needs). */
export async function checkRestoredCluster(cluster: Cluster): Promise<DataCheck> {
  const problems: string[] = [];
  const consistent = cluster.log().includes('consistent recovery state reached');
  if (!consistent) problems.push('the server log never said "consistent recovery state reached"');
  const databases = await cluster.query<{ datname: string }>(
    'SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname',
  );
  let tables = 0;
  for (const { datname } of databases) {
    const [count] = await cluster.query<{ n: string }>(
      "SELECT count(*) AS n FROM pg_class WHERE relkind = 'r' AND relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)",
      [],
      datname,
    );
    tables += Number(count?.n ?? 0);
  }
  const [checksumSetting] = await cluster.query<{ v: string }>(
    "SELECT current_setting('data_checksums') AS v",
  );

  const amcheckRun = runAmcheck(cluster, ['--all']);
  const amcheck: DataCheck['amcheck'] = amcheckRun ? (amcheckRun.ok ? 'passed' : 'failed') : 'not available';
  if (amcheckRun && !amcheckRun.ok) problems.push(`pg_amcheck: ${amcheckRun.output.slice(0, 2000)}`);

  cluster.stopSync('fast');
  let checksums: DataCheck['checksums'] = checksumSetting?.v === 'on' ? 'not available' : 'off';
  // pg_checksums must be of the server's own major version: it reads pg_control.
  const checksumsBin = `/usr/lib/postgresql/${cluster.major}/bin/pg_checksums`;
  if (checksums === 'not available' && existsSync(checksumsBin)) {
    const result = asPostgres(checksumsBin, ['--check', '-D', cluster.dataDir], { allowFailure: true });
    checksums = result.status === 0 ? 'passed' : 'failed';
    if (result.status !== 0)
      problems.push(`pg_checksums: ${(result.stdout + result.stderr).trim().slice(0, 2000)}`);
  }
  return {
    consistent,
    amcheck,
    checksums,
    tables,
    databases: databases.length,
    problems,
    ok: consistent && amcheck !== 'failed' && checksums !== 'failed',
  };
}
