/**
 * `pgsnap doctor` against real PostgreSQL 15, a file:// repository and moto
 * for the instance role: a healthy host passes, and each broken setup fails
 * with a message of its own that says what to do. The host's own facts (the
 * SSM agent's process, the clock, the volumes) come from recordings, as the
 * discover tests read them; a right AWS refuses comes from aws-sdk-client-mock,
 * since moto allows everything.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SendTaskHeartbeatCommand, SFNClient } from '@aws-sdk/client-sfn';
import { STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { openRepository } from '#domain/repository/open';
import type { AwsClients } from '../../agent/doctor/aws-checks.ts';
import type { CheckResult } from '../../agent/doctor/check.ts';
import { type DoctorOptions, runDoctor } from '../../agent/doctor/doctor.ts';
import type { HostProbe } from '../../agent/doctor/host-checks.ts';
import { connect } from '../../agent/postgres/client.ts';
import { discoverVolumes, type FindmntOutput, recordedSysfs } from '../../agent/volumes/block-devices.ts';
import { archiveEverything, archiverStats, switchSegments } from '../support/archiving.ts';
import { archivingGate } from '../support/backup-mode.ts';
import { Cluster, freePort } from '../support/cluster.ts';
import { clusterForTest, repositoryForTest, type TestCluster } from '../support/fixtures.ts';
import { Moto, skipWithoutMoto } from '../support/moto.ts';
import { operatorCluster } from '../support/operator-cluster.ts';
import { pgsnap } from '../support/pgsnap.ts';
import { type TestRepository, testRepository } from '../support/repository.ts';
import { waitFor } from '../support/wait.ts';
import { stopWalHelpers } from '../support/wal-helpers.ts';

/** A recorded host (test/fixtures/discover) whose volumes hold the cluster at its recorded paths. */
function recordedHost(fixture: 'nitro-separate-volumes' | 'instance-store'): HostProbe {
  const recording = JSON.parse(
    readFileSync(join(import.meta.dirname, '../fixtures/discover', `${fixture}.json`), 'utf8'),
  ) as { findmnt: FindmntOutput; sys: Record<string, string> };
  const paths =
    fixture === 'instance-store'
      ? [{ role: 'data' as const, path: '/mnt/nvme/pg' }]
      : [
          { role: 'data' as const, path: '/var/lib/postgresql/15/main' },
          { role: 'wal' as const, path: '/pgwal/15/main' },
        ];
  return {
    processNames: () => ['systemd', 'amazon-ssm-agen', 'postgres'],
    run: (file) => (file === 'timedatectl' ? { status: 0, stdout: 'yes\n' } : undefined),
    discover: async () => discoverVolumes(paths, recording.findmnt, recordedSysfs(recording.sys)),
  };
}

const failures = (checks: CheckResult[]) => checks.filter((c) => c.status === 'fail');

describe.skipIf(skipWithoutMoto)('pgsnap doctor', () => {
  let moto: Moto;
  beforeAll(async () => {
    moto = await Moto.start();
  });
  afterAll(async () => {
    await moto?.stop();
  });

  const motoClients = (): AwsClients => ({
    sts: new STSClient(moto.client()),
    sfn: new SFNClient(moto.client()),
    cloudwatch: new CloudWatchClient(moto.client()),
    ec2: new EC2Client(moto.client()),
  });

  /** A cluster that archives with pgsnap wal-push into a file:// repository, everything archived. */
  async function archivingCluster(
    settings: Record<string, string> = {},
  ): Promise<TestCluster & { repo: TestRepository }> {
    const repo = repositoryForTest('file');
    const test = await clusterForTest({ settings: { archive_command: repo.archiveCommand(), ...settings } });
    return { ...test, repo };
  }

  function options(
    test: TestCluster,
    repo: { url: string; cluster: string },
    overrides: Partial<DoctorOptions> = {},
  ): DoctorOptions {
    return {
      connect: () => connect({ env: test.cluster.env, applicationName: 'pgsnap doctor test' }),
      repository: { ...repo, open: () => openRepository(repo.url, repo.cluster) },
      spoolRoot: test.stateDir,
      aws: async () => motoClients(),
      host: recordedHost('nitro-separate-volumes'),
      ...overrides,
    };
  }

  it('passes a healthy host, and says what each check found', async () => {
    const test = await archivingCluster();
    const last = await archiveEverything(test.cluster);
    const report = await runDoctor(options(test, test.repo));
    expect(failures(report.checks)).toEqual([]);
    expect(report.ok).toBe(true);
    const byName = Object.fromEntries(report.checks.map((c) => [c.check, c]));
    for (const name of [
      'version',
      'connection',
      'role',
      'wal_level',
      'archive_mode',
      'archiver',
      'archive_command.pgsnap',
      'archiver.backlog',
      'pg_wal.room',
      'repository.reachable',
      'repository.pin',
      'repository.wal',
      'aws.credentials',
      'aws.states',
      'aws.cloudwatch',
      'ssm-agent',
      'volumes',
      'clock',
    ]) {
      expect(byName[name]?.status, `${name}: ${byName[name]?.message}`).toBe('ok');
    }
    expect(byName['repository.wal']!.message).toContain(`${last} fetched and verified`);
    expect(byName.volumes!.message).toContain('vol-0a1b2c3d4e5f60001');
  });

  it('the command prints the checks as JSON and exits 0 on a healthy host (--local)', async () => {
    const test = await archivingCluster();
    await archiveEverything(test.cluster);
    const result = await pgsnap(['doctor', '--local', '--json', ...test.repo.flags], test.env);
    expect(result.code, result.stderr + result.stdout).toBe(0);
    const report = result.json as { ok: boolean; agentVersion: string; checks: CheckResult[] };
    expect(report.ok).toBe(true);
    expect(report.agentVersion).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version);
    expect(report.checks).toContainEqual(expect.objectContaining({ check: 'repository.wal', status: 'ok' }));
    expect(report.checks).toContainEqual(expect.objectContaining({ check: 'aws', status: 'skip' }));
  });

  it('fails a host whose archiving is off', async () => {
    const test = await archivingCluster({ archive_mode: 'off' });
    const report = await runDoctor(options(test, test.repo));
    expect(report.ok).toBe(false);
    expect(failures(report.checks)).toContainEqual({
      check: 'archive_mode',
      status: 'fail',
      message: 'archive_mode is off; set archive_mode = on and restart the server',
    });
    const result = await pgsnap(['doctor', '--local', ...test.repo.flags], test.env);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('FAIL  archive_mode: archive_mode is off');
  });

  it('fails a host whose archiver is failing', async () => {
    const { cluster, env, stateDir } = await clusterForTest();
    const gate = archivingGate(cluster);
    writeFileSync(gate, '');
    await switchSegments(cluster, 1);
    await waitFor('the archiver to fail', async () =>
      (await archiverStats(cluster)).failed > 0 ? true : undefined,
    );
    const repo = repositoryForTest('file');
    const report = await runDoctor(options({ cluster, env, stateDir }, repo));
    expect(failures(report.checks)).toContainEqual(
      expect.objectContaining({
        check: 'archiver',
        message: expect.stringContaining('the archiver is failing'),
      }),
    );
    // Not pgsnap's archive_command: said, but a warning only.
    expect(report.checks).toContainEqual(
      expect.objectContaining({ check: 'archive_command.pgsnap', status: 'warn' }),
    );
  });

  describe('on a healthy cluster, each broken piece fails with its own message', () => {
    let test: TestCluster;
    let repo: TestRepository;
    let stateDir: string;
    beforeAll(async () => {
      repo = testRepository('file');
      stateDir = mkdtempSync(join(tmpdir(), 'pgsnap-state-'));
      const cluster = await Cluster.create({ settings: { archive_command: repo.archiveCommand() } });
      test = { cluster, env: { ...cluster.env, PGSNAP_STATE_DIR: stateDir }, stateDir };
      await archiveEverything(cluster);
    });
    afterAll(async () => {
      test?.cluster.destroy();
      await stopWalHelpers(test?.cluster.root ?? '/nonexistent');
      repo?.destroy();
      if (stateDir) rmSync(stateDir, { recursive: true, force: true });
    });

    it('a repository pinned to another cluster', async () => {
      const other = repositoryForTest('file');
      const foreign = await openRepository(other.url, other.cluster);
      await foreign.pin(
        { systemIdentifier: '7000000000000000001', walSegmentSize: 16 * 1024 * 1024 },
        'another',
      );
      foreign.close();
      const report = await runDoctor(options(test, other));
      expect(failures(report.checks)).toEqual([
        expect.objectContaining({
          check: 'repository.pin',
          message: expect.stringContaining(
            'belongs to the cluster with system identifier 7000000000000000001',
          ),
        }),
      ]);
    });

    it('an unreachable repository', async () => {
      const closed = await freePort();
      const unreachable = {
        url: `s3://pgsnap-doctor/pg?region=us-east-1&endpoint=http://127.0.0.1:${closed}`,
        cluster: 'orders-db',
      };
      // Credentials, so that what fails is the connection, not the signing.
      vi.stubEnv('AWS_ACCESS_KEY_ID', 'testing');
      vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'testing');
      onTestFinished(() => {
        vi.unstubAllEnvs();
      });
      const report = await runDoctor(options(test, unreachable));
      expect(failures(report.checks)).toEqual([
        expect.objectContaining({
          check: 'repository.reachable',
          message: expect.stringMatching(/^cannot read s3:\/\/pgsnap-doctor\/pg.*ECONNREFUSED/),
        }),
      ]);
    });

    it('an instance role without the right to answer the state machine', async () => {
      const sfn = mockClient(SFNClient);
      sfn.on(SendTaskHeartbeatCommand).rejects(
        Object.assign(new Error('User is not authorized to perform: states:SendTaskHeartbeat'), {
          name: 'AccessDeniedException',
        }),
      );
      try {
        const report = await runDoctor(options(test, repo));
        expect(failures(report.checks)).toEqual([
          expect.objectContaining({
            check: 'aws.states',
            message: expect.stringContaining('the instance role may not answer the backup state machine'),
          }),
        ]);
      } finally {
        sfn.restore();
      }
    });

    it('a part of the cluster on a volume that is not EBS', async () => {
      const report = await runDoctor(options(test, repo, { host: recordedHost('instance-store') }));
      expect(failures(report.checks)).toEqual([
        expect.objectContaining({
          check: 'volumes',
          message: expect.stringContaining('instance store disk'),
        }),
      ]);
    });

    it('no SSM agent and an unsynchronized clock', async () => {
      const host = recordedHost('nitro-separate-volumes');
      const report = await runDoctor(
        options(test, repo, {
          host: {
            ...host,
            processNames: () => ['systemd', 'postgres'],
            run: (file) => (file === 'timedatectl' ? { status: 0, stdout: 'no\n' } : undefined),
          },
        }),
      );
      expect(failures(report.checks).map((c) => c.check)).toEqual(['ssm-agent', 'clock']);
    });
  });
});

describe('pgsnap doctor on an operator-made PostgreSQL 15 cluster', () => {
  it('passes --local as the pgpass role over TCP, peer auth and the logging collector notwithstanding', async () => {
    const repo = testRepository('file');
    const source = await operatorCluster({ major: 15, archiveCommand: repo.archiveCommand() });
    try {
      const env = { ...source.env, PGSNAP_STATE_DIR: join(source.cluster.root, 'state') };
      source.psql('SELECT pg_switch_wal()');
      const result = await pgsnap(['doctor', '--local', '--json', ...repo.flags], env);
      const report = result.json as { ok: boolean; checks: CheckResult[] };
      expect(failures(report.checks)).toEqual([]);
      expect(result.code, result.stderr + result.stdout).toBe(0);
      expect(report.checks).toContainEqual(
        expect.objectContaining({ check: 'repository.wal', status: 'ok' }),
      );
    } finally {
      source.cluster.destroy();
      repo.destroy();
    }
  }, 120_000);
});
