/**
 * The operator's everyday commands on an operator-made PostgreSQL 15 cluster
 * (test/support/operator-cluster.ts): the repository written once, in a
 * settings file that archive_command reads too; `pgsnap check` watching a
 * switched segment arrive; `backups list` and `show` with the snapshot set,
 * its size and the restorable window, a WAL gap named.
 */
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OperatorCluster, operatorCluster } from '../support/operator-cluster.ts';
import { pgsnap, pgsnapBin } from '../support/pgsnap.ts';
import { type TestRepository, testRepository } from '../support/repository.ts';

/** The restorable window, as backups list and show print it in JSON. */
interface Window {
  earliest: { backupId: string };
  latest: { segment: string };
  gaps: Array<{ first: string; last: string; segments: number }>;
}

describe('on an operator-made PostgreSQL 15 cluster, with the repository in the settings file', () => {
  let repo: TestRepository;
  let source: OperatorCluster;
  let etc: string;
  let settings: string;
  /** The operator's environment: libpq's settings and the settings file, no --repo or --cluster. */
  let env: NodeJS.ProcessEnv;
  let walDir: string;

  beforeAll(async () => {
    repo = testRepository('file');
    walDir = join(repo.url.replace('file://', ''), repo.cluster, 'wal');
    etc = mkdtempSync(join(tmpdir(), 'pgsnap-etc-'));
    chmodSync(etc, 0o755);
    settings = join(etc, 'pgsnap.env');
    writeFileSync(
      settings,
      `# the repository, written once\nPGSNAP_REPO=${repo.url}\nPGSNAP_CLUSTER=${repo.cluster}\n`,
    );
    chmodSync(settings, 0o644);
    // archive_command names no repository: wal-push reads it from the settings file.
    source = await operatorCluster({
      major: 15,
      archiveCommand: `'env PGSNAP_CONFIG=${settings} ${process.execPath} ${pgsnapBin} wal-push %p'`,
    });
    env = { ...source.env, PGSNAP_CONFIG: settings, PGSNAP_STATE_DIR: join(source.cluster.root, 'state') };
  }, 120_000);

  afterAll(() => {
    source?.cluster.destroy();
    repo?.destroy();
    if (etc) rmSync(etc, { recursive: true, force: true });
  });

  it('check asks for the grant it needs, then sees the switched segment reach the repository', async () => {
    const refused = await pgsnap(['check'], env);
    expect(refused.code, refused.stderr).toBe(3);
    expect(refused.stderr).toContain('GRANT EXECUTE ON FUNCTION pg_switch_wal() TO pgsnap');

    source.psql('GRANT EXECUTE ON FUNCTION pg_switch_wal() TO pgsnap');
    source.psql('INSERT INTO orders SELECT g, 1, 1 FROM generate_series(100001, 100100) g');
    const checked = await pgsnap(['check', '--timeout', '30s', '--json'], env);
    expect(checked.code, checked.stderr).toBe(0);
    const segment = checked.json!.segment as string;
    expect(checked.json).toMatchObject({ archived: true, repository: repo.url });
    expect(checked.json!.waitedMs as number).toBeLessThan(30_000);
    expect(readdirSync(walDir).some((f) => f.startsWith(segment))).toBe(true);
  }, 120_000);

  it('check fails within its --timeout when archive_command fails, with what pg_stat_archiver says', async () => {
    source.psql("ALTER SYSTEM SET archive_command = 'false'");
    source.psql('SELECT pg_reload_conf()');
    try {
      source.psql('INSERT INTO orders SELECT g, 1, 1 FROM generate_series(100101, 100200) g');
      const started = Date.now();
      const checked = await pgsnap(['check', '--timeout', '3s'], env);
      expect(checked.code, checked.stderr).toBe(1);
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(checked.stdout).toMatch(/FAILED: [0-9A-F]{24} is not in .* after 3s/);
      expect(checked.stdout).toMatch(/pg_stat_archiver: last failed [0-9A-F]{24}/);
    } finally {
      source.psql('ALTER SYSTEM RESET archive_command');
      source.psql('SELECT pg_reload_conf()');
    }
    const again = await pgsnap(['check', '--timeout', '60s'], env);
    expect(again.code, again.stderr).toBe(0);
  }, 120_000);

  it('a settings file others may write is refused by every command, before anything is done', async () => {
    chmodSync(settings, 0o666);
    try {
      const listed = await pgsnap(['backups', 'list'], env);
      expect(listed.code).toBe(3);
      expect(listed.stderr).toContain(`refusing the settings file: its file ${settings}`);
      expect(listed.stderr).toContain(`chmod go-w ${settings}`);
    } finally {
      chmodSync(settings, 0o644);
    }
  });

  it('backups list and show give the snapshot set, its size and the restorable window, a WAL gap named', async () => {
    const ran = await pgsnap(
      [
        'run',
        '--provider',
        'copy',
        '--snapshot-dir',
        join(source.cluster.root, 'snapshots'),
        '--fast',
        '--json',
      ],
      env,
    );
    const holderLog = join(source.cluster.root, 'state', repo.cluster, 'holder.log');
    expect(ran.code, `${ran.stderr}${existsSync(holderLog) ? readFileSync(holderLog, 'utf8') : ''}`).toBe(0);
    const backupId = ran.json!.backupId as string;

    const listed = await pgsnap(['backups', 'list', '--json'], env);
    expect(listed.code, listed.stderr).toBe(0);
    const [entry] = listed.json!.backups as Array<Record<string, unknown>>;
    expect(entry).toMatchObject({
      backupId,
      state: 'completed',
      snapshots: [{ provider: 'copy', role: 'data' }],
    });
    // The copy of a PGDATA with 20,000 orders: tens of MiB on this host.
    expect(entry!.bytes as number).toBeGreaterThan(10 * 2 ** 20);
    const window = listed.json!.window as Window;
    expect(window.earliest.backupId).toBe(backupId);
    expect(window.gaps).toEqual([]);
    expect(entry!.restorableTo).toBe(window.latest.segment);

    // Three more segments archived, and the middle one lost from the repository.
    const segments: string[] = [];
    for (let i = 0; i < 3; i++) {
      source.psql(
        `INSERT INTO orders SELECT g, 1, 1 FROM generate_series(${200_000 + i * 100}, ${200_099 + i * 100}) g`,
      );
      const checked = await pgsnap(['check', '--json'], env);
      expect(checked.code, checked.stderr).toBe(0);
      segments.push(checked.json!.segment as string);
    }
    const lost = readdirSync(walDir).find((f) => f.startsWith(segments[1]!))!;
    renameSync(join(walDir, lost), join(source.cluster.root, lost));

    const after = await pgsnap(['backups', 'list'], env);
    expect(after.code, after.stderr).toBe(0);
    expect(after.stdout).toContain('SNAPSHOTS');
    expect(after.stdout).toMatch(new RegExp(`${backupId} +completed .* 1 copy +\\d+ MiB`));
    expect(after.stdout).toContain(`WAL gap: ${segments[1]} missing (1 segment)`);
    expect(after.stdout).toContain(`WAL up to ${segments[2]}`);

    const shown = await pgsnap(['backups', 'show', backupId, '--json'], env);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.json!.restorableTo).toBe(segments[0]);
    expect((shown.json!.window as Window).gaps).toEqual([
      { first: segments[1], last: segments[1], segments: 1 },
    ]);
    expect((shown.json!.snapshotBytes as number[])[0]).toBeGreaterThan(10 * 2 ** 20);
    const text = await pgsnap(['backups', 'show', backupId], env);
    expect(text.stdout).toContain(`restorableTo`);
    expect(text.stdout).toMatch(/snapshot \/.* \(copy, data of .*\): \d+ MiB/);
  }, 180_000);
});
