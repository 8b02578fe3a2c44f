/**
 * `pgsnap doctor --restore-target` on this machine, which has PostgreSQL 15
 * and no other system server: a real backup records what a restore target
 * must match (the server's version, its preloaded libraries, the uid owning
 * its data directory), and the doctor finds PostgreSQL 15 with those
 * libraries and that uid here, and reports a missing major, a missing
 * library, another uid and an unreachable endpoint, each with what to do. The
 * endpoints are a local HTTP server on 127.0.0.1 (AWS_ENDPOINT_URL, as the
 * AWS SDKs read it); the SSM agent's process comes from a recording.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRepository } from '#domain/repository/open';
import type { CheckResult } from '../../agent/doctor/check.ts';
import { procProcessNames, runProgram } from '../../agent/doctor/host-checks.ts';
import { type RestoreTargetOptions, runRestoreTargetDoctor } from '../../agent/doctor/restore-target.ts';
import { freePort } from '../support/cluster.ts';
import { clusterForTest, repositoryForTest, tempDirForTest } from '../support/fixtures.ts';
import { testManifest } from '../support/manifests.ts';
import { copyProviderBackup, pgsnap } from '../support/pgsnap.ts';

const postgresUid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
const byName = (checks: CheckResult[]) => Object.fromEntries(checks.map((c) => [c.check, c]));

describe('pgsnap doctor --restore-target', () => {
  let endpoint: Server;
  let endpointUrl: string;
  beforeAll(async () => {
    // Answers every request 403, as an AWS endpoint answers an unsigned one: reachable.
    endpoint = createServer((_, response) => response.writeHead(403).end());
    await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
    endpointUrl = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => endpoint?.close(resolve));
  });

  /** A PATH holding a pgsnap, as the drill AMI has it in /usr/local/bin. */
  function documentPath(): string[] {
    const dir = tempDirForTest('pgsnap-bin-');
    writeFileSync(join(dir, 'pgsnap'), '#!/bin/sh\n');
    chmodSync(join(dir, 'pgsnap'), 0o755);
    return [dir];
  }

  function options(overrides: Partial<RestoreTargetOptions>): RestoreTargetOptions {
    return {
      repository: undefined,
      pgBin: undefined,
      local: false,
      env: { AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL: endpointUrl },
      host: {
        processNames: () => [...procProcessNames(), 'amazon-ssm-agen'],
        run: runProgram,
        discover: async () => ({ volumes: [], problems: [] }) as never,
      },
      documentPath: documentPath(),
      checkLimitMs: 10_000,
      ...overrides,
    };
  }

  it("a backup records the source's preloaded libraries and uid, and a host with PostgreSQL 15, them and that uid passes", async () => {
    const repo = repositoryForTest('file');
    const source = await clusterForTest({
      settings: { archive_command: repo.archiveCommand(), shared_preload_libraries: 'pg_stat_statements' },
    });
    const backupId = await copyProviderBackup(source.cluster.root, source.env, repo.flags);
    const repository = await openRepository(repo.url, repo.cluster);
    const manifest = await repository.readManifest(backupId);
    repository.close();
    expect(manifest?.server).toEqual({ sharedPreloadLibraries: ['pg_stat_statements'], uid: postgresUid });

    const seen: string[] = [];
    const report = await runRestoreTargetDoctor(
      options({
        repository: { ...repo, open: () => openRepository(repo.url, repo.cluster) },
        onCheck: (c) => seen.push(c.check),
      }),
    );
    const checks = byName(report.checks);
    expect(report.checks.filter((c) => c.status === 'fail')).toEqual([]);
    expect(report.ok).toBe(true);
    expect(checks.source!.message).toContain(`backup ${backupId} of orders-db (PostgreSQL 15.`);
    expect(checks['postgres.binaries']!.message).toMatch(
      /^postgres \(PostgreSQL\) 15\.\d+.* in \/usr\/lib\/postgresql\/15\/bin/,
    );
    expect(checks['postgres.libraries']!.message).toBe('pg_stat_statements in /usr/lib/postgresql/15/lib');
    expect(checks['postgres.uid']!.status).toBe('ok');
    for (const service of ['sts', 's3', 'ssm', 'ssmmessages', 'ec2messages', 'sfn', 'kms', 'cloudwatch']) {
      expect(checks[`endpoint.${service}`]?.status, service).toBe('ok');
    }
    // Each check reported as it ran, in the order an operator builds the host.
    expect(seen.slice(0, 7)).toEqual([
      'version',
      'agent',
      'source',
      'postgres.binaries',
      'postgres.libraries',
      'postgres.uid',
      'ssm-agent',
    ]);
  });

  it('a source with a library and a uid this host lacks, and an endpoint the subnet cannot reach, fail with what to do', async () => {
    const repo = repositoryForTest('file');
    const repository = await openRepository(repo.url, repo.cluster);
    await repository.writeManifest(
      testManifest({
        state: 'completed',
        serverVersion: '15.18 (Debian 15.18-0+deb12u1)',
        server: { sharedPreloadLibraries: ['pg_stat_statements', 'timescaledb'], uid: postgresUid + 1 },
      }),
    );
    repository.close();
    const closed = await freePort();
    const report = await runRestoreTargetDoctor(
      options({
        repository: { ...repo, open: () => openRepository(repo.url, repo.cluster) },
        env: {
          AWS_REGION: 'eu-west-1',
          AWS_ENDPOINT_URL: endpointUrl,
          AWS_ENDPOINT_URL_KMS: `http://127.0.0.1:${closed}`,
        },
      }),
    );
    const checks = byName(report.checks);
    expect(report.ok).toBe(false);
    expect(checks['postgres.binaries']!.status).toBe('ok');
    expect(checks['postgres.libraries']).toMatchObject({ status: 'fail' });
    expect(checks['postgres.libraries']!.message).toContain(
      'the source preloads timescaledb, not in /usr/lib/postgresql/15/lib',
    );
    expect(checks['postgres.uid']!.message).toContain(`usermod -u ${postgresUid + 1} postgres`);
    expect(checks['endpoint.kms']).toMatchObject({ status: 'fail' });
    expect(checks['endpoint.kms']!.message).toContain('com.amazonaws.eu-west-1.kms');
    expect(checks['endpoint.s3']!.status).toBe('ok');
  });

  it('the command reports a major that is not installed with what to install, and exits 3 (--major, --local)', async () => {
    const result = await pgsnap(['doctor', '--restore-target', '--major', '13', '--local', '--json'], {
      PATH: process.env.PATH,
    });
    expect(result.code, result.stderr).toBe(3);
    const report = result.json as { ok: boolean; checks: CheckResult[] };
    const checks = byName(report.checks);
    expect(checks.source).toMatchObject({ status: 'ok', message: '--major 13: PostgreSQL 13' });
    expect(checks['postgres.binaries']).toMatchObject({ status: 'fail' });
    expect(checks['postgres.binaries']!.message).toContain('install postgresql-13');
    expect(checks.aws).toMatchObject({ status: 'skip' });
    // Printed as each check ran, on stderr.
    expect(result.stderr).toMatch(
      /checking postgres\.binaries\.\.\.\n.*FAIL {2}postgres\.binaries: no PostgreSQL 13/,
    );
  });

  it('--major without --restore-target is a usage error', async () => {
    const result = await pgsnap(['doctor', '--major', '15', '--local'], { PATH: process.env.PATH });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--major goes with --restore-target');
  });
});
