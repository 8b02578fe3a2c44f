/**
 * A backup taken from a hot standby: the label says BACKUP FROM: standby, there
 * is no backup history file, and `end` waits until the standby (archive_mode =
 * always) has archived the segment holding the stop point, which needs the
 * primary to finish that segment.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { prepareDataDirectory } from '../../agent/restore/prepare.ts';
import { asPostgres, Cluster, chownTree, ownedDir, systemBin } from '../support/cluster.ts';
import { pgsnap } from '../support/pgsnap.ts';

const run = promisify(execFile);

async function waitForReplay(primary: Cluster, standby: Cluster): Promise<void> {
  const [{ lsn }] = (await primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')) as [
    { lsn: string },
  ];
  for (let i = 0; i < 300; i++) {
    const [row] = await standby.query<{ caught: boolean }>(
      'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS caught',
      [lsn],
    );
    if (row?.caught) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the standby did not catch up');
}

it('backs up a hot standby and restores it, end waiting for the standby to archive the stop segment', async () => {
  const primary = await Cluster.create({ major: 15 });
  let standby: Cluster | undefined;
  let restored: Cluster | undefined;
  try {
    await primary.query('CREATE TABLE t (id bigint PRIMARY KEY, payload text)');
    await primary.query("INSERT INTO t SELECT g, repeat('y', 100) FROM generate_series(1, 5000) g");

    const standbyRoot = ownedDir(join(primary.root, 'standby'));
    asPostgres(join(systemBin, 'pg_basebackup'), [
      '-D',
      join(standbyRoot, 'data'),
      '-h',
      primary.socketDir,
      '-p',
      String(primary.port),
      '-U',
      'postgres',
      '-R',
      '-X',
      'stream',
      '-c',
      'fast',
    ]);
    standby = await Cluster.create({
      major: 15,
      root: standbyRoot,
      dataDir: join(standbyRoot, 'data'),
      // One archive for both, as with a shared repository: segments the standby got from pg_basebackup are
      // marked .done there and only ever archived by the primary. A segment both archive must be identical.
      archiveDir: primary.archiveDir,
      settings: {
        archive_mode: 'always',
        hot_standby: 'on',
        archive_command: `'cmp -s %p ${primary.archiveDir}/%f || cp %p ${primary.archiveDir}/%f'`,
      },
    });
    await waitForReplay(primary, standby);
    const env = { ...standby.env, PGSNAP_STATE_DIR: join(standbyRoot, 'state') };

    const preflight = await pgsnap(['preflight', '--json'], env);
    expect(preflight.code, preflight.stdout).toBe(0);
    const backupDatabase = (report: typeof preflight) =>
      (report.json!.findings as Array<{ check: string; ok: boolean; message: string }>).find(
        (f) => f.check === 'backup_database',
      );
    expect(backupDatabase(preflight)).toMatchObject({
      ok: true,
      message: expect.stringMatching(/^hot_standby_feedback is off/),
    });
    // With feedback on, the snapshot pg_backup_start keeps reaches the primary, for every database: a warning.
    standby.configure({ hot_standby_feedback: 'on' });
    await standby.query('SELECT pg_reload_conf()');
    // (A new session has the setting once the postmaster has read the file again.)
    const feedback = async () =>
      (await standby!.query<{ v: string }>("SELECT current_setting('hot_standby_feedback') AS v"))[0]!.v;
    for (let i = 0; i < 100 && (await feedback()) !== 'on'; i++) await new Promise((r) => setTimeout(r, 50));
    const withFeedback = await pgsnap(['preflight', '--json'], env);
    expect(withFeedback.code, withFeedback.stdout).toBe(0); // a warning does not stop a backup
    expect(backupDatabase(withFeedback)).toMatchObject({
      ok: false,
      message: expect.stringMatching(/^hot_standby_feedback is on: .*reaches the primary.*in any database$/),
    });
    const begun = await pgsnap(['begin', '--label', 'from standby', '--json'], env);
    expect(begun.code, begun.stderr).toBe(0);
    expect(begun.json!.backupFrom).toBe('standby');

    const copy = join(standbyRoot, 'copy');
    await run('cp', ['-a', standby.dataDir, copy]);

    // The stop segment is complete only when the primary switches to a new one: keep it moving while end waits.
    let ending = true;
    const switcher = (async () => {
      while (ending) {
        await primary.query(
          "INSERT INTO t VALUES ((SELECT max(id) + 1 FROM t), 'late'); SELECT pg_switch_wal()",
        );
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    const ended = await pgsnap(['end', '--output', join(standbyRoot, 'artifacts'), '--json'], env);
    ending = false;
    await switcher;
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.json!.backupFrom).toBe('standby');
    const names = (ended.json!.artifacts as Array<{ name: string }>).map((a) => a.name);
    expect(names).toEqual(['backup_label']);
    const label = readFileSync(join(standbyRoot, 'artifacts', 'backup_label'), 'utf8');
    expect(label).toContain('BACKUP FROM: standby');
    const stopWalFile = ended.json!.stopWalFile as string;
    expect(readFileSync(join(primary.archiveDir, stopWalFile)).length).toBe(16 * 1024 * 1024);

    prepareDataDirectory({
      pgdata: copy,
      backupLabel: label,
      restoreCommand: `cp ${primary.archiveDir}/%f %p`,
    });
    chownTree(copy);
    restored = await Cluster.fromCopy({
      major: 15,
      root: ownedDir(join(primary.root, 'restored')),
      dataDir: copy,
      archiveDir: primary.archiveDir,
    });
    await restored.waitForPromotion();
    const [row] = await restored.query<{ n: string }>('SELECT count(*) AS n FROM t WHERE id <= 5000');
    expect(Number(row!.n)).toBe(5000);
    expect(restored.log()).toContain('consistent recovery state reached');
  } finally {
    restored?.destroy();
    standby?.destroy();
    primary.destroy();
  }
});
