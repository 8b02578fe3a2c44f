/**
 * `pgsnap restore` checks that the directory holds the backup's snapshot
 * before it changes anything (an operator-made PostgreSQL 15 cluster, a copy
 * backup): an empty directory, a stopped copy of the live PGDATA and a
 * restore already promoted are refused with how to put the snapshot there;
 * a second restore replaces the first one's recovery target.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { controlStateOf } from '../../agent/postgres/pgdata.ts';
import { asPostgres, binDir, clientBin, freePort, ownedDir } from '../support/cluster.ts';
import { type OperatorCluster, operatorCluster } from '../support/operator-cluster.ts';
import { copyProviderBackup, pgsnap } from '../support/pgsnap.ts';
import { type TestRepository, testRepository } from '../support/repository.ts';

let repo: TestRepository;
let source: OperatorCluster;
let scratch: string;
let backupId: string;
let snapshot: string;
let stopLsn: string;

beforeAll(async () => {
  repo = testRepository('file');
  source = await operatorCluster({ major: 15, archiveCommand: repo.archiveCommand() });
  scratch = ownedDir(mkdtempSync(join(tmpdir(), 'pgsnap-restore-check-')));
  chmodSync(scratch, 0o711);
  const env = { ...source.env, PGSNAP_STATE_DIR: join(source.cluster.root, 'state') };
  backupId = await copyProviderBackup(source.cluster.root, env, repo.flags);
  const shown = await pgsnap(['backups', 'show', backupId, '--json', ...repo.flags], {});
  snapshot = (shown.json!.snapshots as Array<{ snapshotId: string }>)[0]!.snapshotId;
  stopLsn = shown.json!.stopLsn as string;
  source.psql('SELECT pg_switch_wal()');
}, 120_000);

afterAll(() => {
  source?.cluster.destroy();
  repo?.destroy();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

const restore = (pgdata: string, ...more: string[]) =>
  pgsnap(['restore', '--backup-id', backupId, '--pgdata', pgdata, ...more, ...repo.flags], {});

/** The snapshot put back as the operator would: cp -a into a directory of the server's user. */
function putSnapshot(name: string): string {
  const pgdata = join(scratch, name);
  execFileSync('cp', ['-a', snapshot, pgdata]);
  return pgdata;
}

it('refuses an empty directory with how to put the snapshot there', async () => {
  const empty = ownedDir(join(scratch, 'empty'));
  const refused = await restore(empty);
  expect(refused.code).toBe(3);
  expect(refused.stderr).toContain(`${empty} does not hold the snapshot of backup ${backupId}`);
  expect(refused.stderr).toContain(`cp -a ${snapshot}/. ${empty}`);
  expect(refused.stderr).not.toContain('ENOENT');
  expect(readdirSync(empty)).toEqual([]);
});

it('refuses a stopped copy of the live data directory before changing anything', async () => {
  source.cluster.stopSync('fast');
  const copy = join(scratch, 'live-copy');
  try {
    execFileSync('cp', ['-a', source.cluster.dataDir, copy]);
  } finally {
    source.cluster.start();
  }
  const walBefore = readdirSync(join(copy, 'pg_wal')).sort();
  const refused = await restore(copy);
  expect(refused.code).toBe(3);
  expect(refused.stderr).toMatch(
    new RegExp(
      `does not hold the snapshot of backup ${backupId}: its pg_control's latest checkpoint \\S+ is after the backup's stop \\(${stopLsn}\\)`,
    ),
  );
  expect(refused.stderr).toContain(`cp -a ${snapshot}/.`);
  expect(readdirSync(copy)).not.toContain('backup_label');
  expect(readdirSync(copy)).not.toContain('recovery.signal');
  expect(readdirSync(join(copy, 'pg_wal')).sort()).toEqual(walBefore);
});

it('a second restore replaces the first one’s target; a promoted restore is refused', async () => {
  const pgdata = putSnapshot('restored');
  const first = await restore(pgdata, '--target-time', new Date(Date.now() + 3_600_000).toISOString());
  expect(first.code, first.stderr).toBe(0);
  const second = await restore(pgdata);
  expect(second.code, second.stderr).toBe(0);
  const autoConf = readFileSync(join(pgdata, 'postgresql.auto.conf'), 'utf8');
  expect(autoConf.match(/# pgsnap restore/g)).toHaveLength(1);
  // Every target is emptied: recovery goes to the end of the archived WAL, as the second restore said.
  expect(autoConf).toContain("recovery_target_time = ''");
  expect(autoConf.match(/^recovery_target_time =/gm), autoConf).toHaveLength(1);

  // Recovered and promoted, it is no longer the snapshot.
  const port = await freePort();
  const sock = ownedDir(join(scratch, 'restored-sock'));
  const started = asPostgres(join(binDir(15), 'pg_ctl'), [
    '-D',
    pgdata,
    '-l',
    join(scratch, 'restored.log'),
    '-o',
    `-c port=${port} -c listen_addresses= -c unix_socket_directories=${sock} -c logging_collector=off`,
    '-w',
    'start',
  ]);
  expect(started.status).toBe(0);
  try {
    for (let i = 0; i < 600 && controlStateOf(pgdata).state !== 'in production'; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(controlStateOf(pgdata).state).toBe('in production');
  } finally {
    asPostgres(join(binDir(15), 'pg_ctl'), ['-D', pgdata, '-m', 'fast', '-w', 'stop']);
  }
  const refused = await restore(pgdata);
  expect(refused.code).toBe(3);
  expect(refused.stderr).toContain(`is after the backup's stop (${stopLsn})`);
}, 120_000);

it('with --from-snapshot, puts the copy snapshot in place itself: a restore in one command', async () => {
  const occupied = ownedDir(join(scratch, 'occupied'));
  execFileSync('touch', [join(occupied, 'keep-me')]);
  const refused = await restore(occupied, '--from-snapshot');
  expect(refused.code).toBe(3);
  expect(refused.stderr).toContain(`--from-snapshot puts the snapshot at ${occupied}, which is not empty`);
  expect(readdirSync(occupied)).toEqual(['keep-me']);

  const pgdata = ownedDir(join(scratch, 'one-command'));
  const restored = await restore(pgdata, '--from-snapshot', '--target', 'immediate', '--json');
  expect(restored.code, restored.stderr).toBe(0);
  expect(restored.json).toMatchObject({ pgdata, fromSnapshot: { provider: 'copy', targets: [pgdata] } });
  expect(readdirSync(pgdata)).toContain('backup_label');

  const port = await freePort();
  const sock = ownedDir(join(scratch, 'one-command-sock'));
  const pgCtl = join(binDir(15), 'pg_ctl');
  const started = asPostgres(pgCtl, [
    '-D',
    pgdata,
    '-l',
    join(scratch, 'one-command.log'),
    '-o',
    `-c port=${port} -c listen_addresses= -c unix_socket_directories=${sock} -c logging_collector=off`,
    '-w',
    'start',
  ]);
  expect(started.status).toBe(0);
  try {
    for (let i = 0; i < 600 && controlStateOf(pgdata).state !== 'in production'; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(controlStateOf(pgdata).state).toBe('in production');
    const count = asPostgres(clientBin('psql')!, [
      ...['-h', sock, '-p', String(port), '-d', 'app', '-XAt', '-c', 'SELECT count(*) FROM orders'],
    ]);
    expect(count.stdout.trim()).toBe('20000');
  } finally {
    asPostgres(pgCtl, ['-D', pgdata, '-m', 'fast', '-w', 'stop']);
  }
}, 120_000);
