/**
 * A backup is completed only with a snapshot (issue 29, item 3). On one
 * machine the agent is the orchestrator: `end` without `--snapshot`, and
 * `run -- CMD` whose CMD names no snapshot, leave the backup stopped with a
 * note; `run` then exits 3. Retention counts only backups with snapshots, so
 * those stopped backups never displace the real one, nor its WAL.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { begin } from '../support/backup-mode.ts';
import { Cluster } from '../support/cluster.ts';
import { pgsnap } from '../support/pgsnap.ts';
import { testRepository } from '../support/repository.ts';

interface Listed {
  backupId: string;
  state: string;
  snapshots: Array<{ provider: string; snapshotId?: string; snapshot?: string }>;
}

it('end without a snapshot and run whose command names none leave the backup stopped, and retention keeps the real one', async () => {
  const repo = testRepository('file');
  const source = await Cluster.create({ settings: { archive_command: repo.archiveCommand() } });
  try {
    await source.query('CREATE TABLE t AS SELECT generate_series(1, 1000) AS id');
    const env = { ...source.env, PGSNAP_STATE_DIR: join(source.root, 'state') };
    const listed = async (): Promise<Listed[]> => {
      const list = await pgsnap(['backups', 'list', '--json', ...repo.flags], env);
      expect(list.code, list.stderr).toBe(0);
      return list.json!.backups as unknown as Listed[];
    };

    // The real backup: a snapshot the copy provider took while it ran.
    const real = await pgsnap(
      [
        'run',
        '--provider',
        'copy',
        '--snapshot-dir',
        join(source.root, 'snapshots'),
        '--fast',
        '--json',
        ...repo.flags,
      ],
      env,
    );
    expect(real.code, real.stderr).toBe(0);
    const realId = real.json!.backupId as string;
    const realSnapshot = (real.json!.snapshots as Array<{ snapshot: string }>)[0]!.snapshot;

    // begin, then end with no snapshot named: stopped, with a note saying why and what to do.
    await source.query('SELECT pg_switch_wal()');
    const begun = await begin(env, '--label', 'no snapshot', ...repo.flags);
    const ended = await pgsnap(['end', '--json', ...repo.flags], env);
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.json!.manifest).toMatchObject({ state: 'stopped' });
    expect(ended.json!.note).toContain(`backup ${begun.backupId} is stopped, not completed`);
    expect(ended.json!.note).toContain('--snapshot REF');
    const endedText = await pgsnap(['backups', 'show', begun.backupId, ...repo.flags], env);
    expect(endedText.stdout).toContain('stopped');

    // run -- CMD whose CMD prints no pgsnap-snapshot line: stopped, and run exits 3 with the note.
    await source.query('SELECT pg_switch_wal()');
    const unnamed = await pgsnap(
      ['run', '--fast', '--json', ...repo.flags, '--', 'sh', '-c', 'echo took one'],
      env,
    );
    expect(unnamed.code, unnamed.stderr).toBe(3);
    expect(unnamed.json!.note).toContain('no snapshot was named for it');
    expect(unnamed.json!.manifest).toMatchObject({ state: 'stopped' });
    const unnamedId = unnamed.json!.backupId as string;

    expect((await listed()).map((b) => [b.backupId, b.state])).toEqual([
      [realId, 'completed'],
      [begun.backupId, 'stopped'],
      [unnamedId, 'stopped'],
    ]);

    // Retention keeps the one backup that can be restored, and the WAL from its start.
    const applied = await pgsnap(['retention', '--keep-last', '1', '--json', ...repo.flags], env);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.json!.walFrom).toBe(real.json!.startWalFile);
    expect((applied.json!.keep as Array<{ backupId: string }>).map((k) => k.backupId)).toContain(realId);
    expect((applied.json!.remove as Array<{ backupId: string }>).map((r) => r.backupId)).not.toContain(
      realId,
    );
    expect(existsSync(realSnapshot)).toBe(true);
    expect((await listed()).find((b) => b.backupId === realId)?.state).toBe('completed');

    // A command that names what it took: completed, its reference in the catalog.
    const named = await pgsnap(
      [
        'run',
        '--fast',
        '--json',
        ...repo.flags,
        '--',
        'sh',
        '-c',
        'echo "pgsnap-snapshot: vg0/pgdata@nightly"',
      ],
      env,
    );
    expect(named.code, named.stderr).toBe(0);
    expect(named.json!.note).toBeUndefined();
    const namedEntry = (await listed()).find((b) => b.backupId === named.json!.backupId);
    expect(namedEntry).toMatchObject({
      state: 'completed',
      snapshots: [{ provider: 'command', snapshotId: 'vg0/pgdata@nightly' }],
    });
    // The SNAPSHOTS column tells a backup with a snapshot set from one without; show names the reference.
    const table = (await pgsnap(['backups', 'list', ...repo.flags], env)).stdout.split('\n');
    expect(table.find((line) => line.startsWith(named.json!.backupId as string))).toContain('1 command');
    expect(table.find((line) => line.startsWith(unnamedId))).toMatch(/stopped .* none /);
    const shown = await pgsnap(['backups', 'show', named.json!.backupId as string, ...repo.flags], env);
    expect(shown.stdout).toContain('snapshot vg0/pgdata@nightly (command');
  } finally {
    source.destroy();
    repo.destroy();
  }
});
