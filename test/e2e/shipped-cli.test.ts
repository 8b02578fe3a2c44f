/**
 * The program an operator runs, whole: its version, every command's --help, doctor, and archiving through
 * PostgreSQL, with not one Node.js warning on stdout, stderr or in the server log. In the e2e project this
 * runs the bundle on this Node.js; in the executable project (PGSNAP_TEST_BIN) the single executable
 * dist/pgsnap-linux-x64 with the Node.js it carries.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Cluster, ownedDir } from '../support/cluster.ts';
import { pgsnap, testedExecutable } from '../support/pgsnap.ts';
import { LocalS3 } from '../support/s3.ts';
import { waitFor } from '../support/wait.ts';

const { version } = JSON.parse(readFileSync(resolve(import.meta.dirname, '../../package.json'), 'utf8')) as {
  version: string;
};
/** A port nothing listens on: one the system gave out and took back. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolveListening) => server.listen(0, '127.0.0.1', resolveListening));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolveClosed) => server.close(resolveClosed));
  return port;
}

/** What Node.js prints for a warning: `(node:PID) [CODE] SomeWarning: ...`. */
const warning = /Warning\b/;

describe('pgsnap, as shipped', () => {
  test('--version is package.json version, on the Node.js of the build under test', async () => {
    const result = await pgsnap(['--version'], {});
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe('');
    const [first, second] = result.stdout.split('\n');
    expect(first).toBe(`pgsnap ${version}`);
    expect(second).toMatch(
      testedExecutable
        ? /^Node\.js v24\.\d+\.\d+ \(single executable, V8 code cache used, linux-x64\)$/
        : new RegExp(`^Node\\.js ${process.version.replaceAll('.', '\\.')} \\(running `),
    );
  });

  test("every command's --help prints its usage and exits 0", async () => {
    const help = await pgsnap(['--help'], {});
    expect(help.code).toBe(0);
    const names = [...help.stdout.matchAll(/^ {2}([a-z-]+) {2,}/gm)].map((m) => m[1]!);
    expect(names).toContain('restore');
    expect(names.length).toBeGreaterThan(15);
    const commands = [...names.map((name) => [name]), ['restore', 'start'], ['backup', 'start']];
    for (const command of commands) {
      const result = await pgsnap([...command, '--help'], {});
      const what = command.join(' ');
      if (testedExecutable && what === 'demo') {
        // The demo is the local harness, not the agent: the executable says where it runs instead.
        expect(result.code, what).toBe(3);
        expect(result.stderr, what).toMatch(/runs from a project checkout/);
        continue;
      }
      expect(result.code, `${what}: ${result.stderr}`).toBe(0);
      expect(result.stderr, what).toBe('');
      expect(result.stdout, what).toMatch(new RegExp(`^pgsnap ${what}\\b`));
    }
  });
});

describe('backups list on a repository it cannot read', () => {
  let s3: LocalS3;
  beforeAll(async () => {
    s3 = await LocalS3.start();
  });
  afterAll(() => s3?.destroy());

  test('names the missing bucket, or the refused connection, as the reason', async () => {
    const missing = await pgsnap(
      ['backups', 'list', '--repo', s3.url('repo', 'no-such-bucket'), '--cluster', 'orders-db'],
      s3.env,
    );
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(
      /ListObjectsV2 s3:\/\/no-such-bucket\/repo\/orders-db\/backups\/ failed: NoSuchBucket .*create the bucket/,
    );
    const refusedUrl = `s3://pgsnap-test/repo?endpoint=${encodeURIComponent(`http://127.0.0.1:${await closedPort()}`)}&path-style=true&region=us-east-1`;
    const refused = await pgsnap(['backups', 'list', '--repo', refusedUrl, '--cluster', 'orders-db'], s3.env);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/ECONNREFUSED.*the repository is unreachable/);
    for (const result of [missing, refused]) expect(result.stderr).not.toMatch(/invalid repository key/);
  });
});

describe('with a password role from PGPASSFILE', () => {
  let cluster: Cluster;
  let scratch: string;
  let repo: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    cluster = await Cluster.create({ major: 15 });
    scratch = mkdtempSync(join(tmpdir(), 'pgsnap-shipped-'));
    repo = `file://${ownedDir(join(cluster.root, 'repo'), 0o755)}`;
    await cluster.query("CREATE ROLE pgsnap LOGIN SUPERUSER PASSWORD 'from the pgpass file'");
    const hba = join(cluster.dataDir, 'pg_hba.conf');
    writeFileSync(hba, `host all pgsnap 127.0.0.1/32 scram-sha-256\n${readFileSync(hba, 'utf8')}`);
    await cluster.query('SELECT pg_reload_conf()');
    const passFile = join(scratch, 'pgpass');
    writeFileSync(passFile, `127.0.0.1:${cluster.port}:*:pgsnap:from the pgpass file\n`);
    chmodSync(passFile, 0o600);
    env = {
      PGHOST: '127.0.0.1',
      PGPORT: String(cluster.port),
      PGUSER: 'pgsnap',
      PGDATABASE: 'postgres',
      PGPASSFILE: passFile,
      PGSNAP_STATE_DIR: join(scratch, 'state'),
    };
  });
  afterAll(() => {
    cluster?.destroy();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  test('doctor names the version under test and prints no warning', async () => {
    const result = await pgsnap(['doctor', '--local', '--repo', repo, '--cluster', 'shipped', '--json'], env);
    expect(result.stderr).not.toMatch(warning);
    expect(result.stdout).not.toMatch(warning);
    const report = result.json as { agentVersion: string; checks: Array<{ check: string; message: string }> };
    expect(report.agentVersion).toBe(version);
    expect(report.checks.find((c) => c.check === 'version')).toEqual({
      check: 'version',
      status: 'ok',
      message: testedExecutable
        ? expect.stringMatching(/^pgsnap \S+ on Node\.js 24\.\d+\.\d+$/)
        : `pgsnap ${version} on Node.js ${process.versions.node}`,
    });
    expect(report.checks.find((c) => c.check === 'connection')).toMatchObject({ status: 'ok' });
  });

  test('doctor on a host without AWS suggests --local, and prints no warning', async () => {
    const result = await pgsnap(['doctor', '--repo', repo, '--cluster', 'shipped'], env);
    expect(result.code).toBe(3);
    expect(result.stdout).toMatch(
      /^FAIL {2}aws\.credentials: no usable AWS credentials .*; or, on a host that is not on AWS .* run pgsnap doctor --local/m,
    );
    expect(result.stderr).not.toMatch(warning);
    expect(result.stdout).not.toMatch(warning);
  });

  test('preflight connects through PGPASSFILE without a warning', async () => {
    const result = await pgsnap(['preflight', '--json'], env);
    expect(result.json, result.stderr).toBeDefined();
    expect(result.stderr).not.toMatch(warning);
  });

  test('wal-push refuses a garbage timeline history file, and stores the real one given afterwards', async () => {
    const file = join(scratch, '00000002.history');
    const push = () =>
      pgsnap(['wal-push', file, '--pgdata', cluster.dataDir, '--repo', repo, '--cluster', 'history'], env);
    writeFileSync(file, '<html>502 Bad Gateway</html>\n');
    const refused = await push();
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/00000002\.history is not a timeline history file/);
    const real = '1\t0/3000158\tno recovery target specified\n';
    writeFileSync(file, real);
    const stored = await push();
    expect(stored.code, stored.stderr).toBe(0);
    const fetched = join(scratch, 'fetched.history');
    const fetch = await pgsnap(
      ['wal-fetch', '00000002.history', fetched, '--repo', repo, '--cluster', 'history'],
      env,
    );
    expect(fetch.code, fetch.stderr).toBe(0);
    expect(readFileSync(fetched, 'utf8')).toBe(real);
  });

  test('as archive_command, wal-push writes no warning into the server log', async () => {
    const line = await pgsnap(
      ['wal-push', '--print-command', '--pgdata', cluster.dataDir, '--repo', repo, '--cluster', 'shipped'],
      env,
    );
    expect(line.code, line.stderr).toBe(0);
    // The postgresql.conf line, as an operator pastes it.
    writeFileSync(join(cluster.dataDir, 'postgresql.auto.conf'), line.stdout, { flag: 'a' });
    await cluster.query('SELECT pg_reload_conf()');
    const [switched] = await cluster.query<{ walfile: string }>(
      'SELECT pg_walfile_name(pg_switch_wal()) AS walfile',
    );
    const walfile = switched!.walfile;
    await waitFor(
      `${walfile} archived by pgsnap wal-push`,
      async () => {
        const [row] = await cluster.query<{ last: string | null }>(
          'SELECT last_archived_wal AS last FROM pg_stat_archiver',
        );
        return row?.last && row.last >= walfile ? true : undefined;
      },
      { cluster, timeoutMs: 30_000 },
    );
    expect(cluster.log()).not.toMatch(warning);
  });
});
