/**
 * Snapshot providers through `pgsnap run --provider`: a multi-volume backup on
 * real btrfs volumes (PGDATA, a tablespace and pg_wal each on its own loop
 * device) restored from its snapshots; the copy and exec providers.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BtrfsProvider } from '../../agent/providers/btrfs.ts';
import type { VolumeSnapshot } from '../../agent/providers/provider.ts';
import { runAmcheck } from '../../agent/restore/checks.ts';
import { prepareDataDirectory } from '../../agent/restore/prepare.ts';
import { BtrfsVolumes, btrfsUnavailable } from '../support/btrfs.ts';
import { Cluster, ownedDir } from '../support/cluster.ts';
import { pgsnap } from '../support/pgsnap.ts';
import { testRepository } from '../support/repository.ts';
import { startWriter } from '../support/writer.ts';

const unavailable = btrfsUnavailable();
if (unavailable && process.env.CI) {
  throw new Error(`CI must run the btrfs tests, but ${unavailable}`);
}
if (unavailable) console.warn(`SKIPPING the btrfs multi-volume test: ${unavailable}`);

describe('btrfs provider', () => {
  it.skipIf(unavailable !== undefined)(
    'restores PGDATA, a tablespace and pg_wal from snapshots of three separate volumes',
    async () => {
      const root = mkdtempSync(join(tmpdir(), 'pgsnap-btrfs-'));
      chmodSync(root, 0o711);
      const volumes = new BtrfsVolumes(root);
      let source: Cluster | undefined;
      let restored: Cluster | undefined;
      try {
        const data = volumes.create('pgdata');
        const tablespace = volumes.create('ts1');
        const wal = volumes.create('pgwal');
        source = await Cluster.create({
          major: 15,
          root: ownedDir(join(root, 'cluster')),
          initdbAt: { dataDir: data.subvolume, walDir: wal.subvolume },
        });
        await source.query(`CREATE TABLESPACE ts1 LOCATION '${tablespace.subvolume}'`);
        await source.query('CREATE TABLE in_ts (id bigint PRIMARY KEY, payload text) TABLESPACE ts1');
        await source.query('CREATE TABLE in_base (id bigint PRIMARY KEY, payload text)');
        const env = { ...source.env, PGSNAP_STATE_DIR: join(root, 'state') };

        const writerClient = await source.client();
        const writer = startWriter(writerClient, ['in_ts', 'in_base']);
        const artifacts = join(root, 'artifacts');
        const ran = await pgsnap(
          ['run', '--provider', 'btrfs', '--fast', '--output', artifacts, '--json'],
          env,
        );
        const committedBeforeEnd = writer.lastCommitted;
        await writer.stop();
        await writerClient.end();
        expect(ran.code, ran.stderr).toBe(0);
        const snapshots = ran.json!.snapshots as VolumeSnapshot[];
        expect(snapshots.map((s) => [s.role, s.source])).toEqual([
          ['data', data.subvolume],
          ['tablespace', tablespace.subvolume],
          ['wal', wal.subvolume],
        ]);
        // The writer kept committing during the run; everything up to the last commit seen before end must return.
        expect(committedBeforeEnd).toBeGreaterThan(0);

        // The replacement host: the same mount points, the volumes restored from their snapshots.
        source.stopSync('fast');
        const provider = new BtrfsProvider();
        for (const snapshot of snapshots) {
          renameSync(snapshot.source, `${snapshot.source}.lost`);
          await provider.restore(snapshot, snapshot.source);
        }
        prepareDataDirectory({
          pgdata: data.subvolume,
          backupLabel: readFileSync(join(artifacts, 'backup_label'), 'utf8'),
          tablespaceMap: readFileSync(join(artifacts, 'tablespace_map'), 'utf8'),
          restoreCommand: `cp ${source.archiveDir}/%f %p`,
        });
        // pg_wal is still the link onto the WAL volume, and its old contents are gone.
        expect(readdirSync(join(data.subvolume, 'pg_wal'))).toEqual(['archive_status']);
        restored = await Cluster.create({
          major: 15,
          root: ownedDir(join(root, 'restored')),
          dataDir: data.subvolume,
          archiveDir: source.archiveDir,
        });
        await restored.waitForPromotion();
        for (const table of ['in_ts', 'in_base']) {
          const [row] = await restored.query<{ n: string }>(
            `SELECT count(*) AS n FROM ${table} WHERE id <= $1`,
            [committedBeforeEnd],
          );
          expect(Number(row!.n), table).toBe(committedBeforeEnd);
        }
        const amcheck = runAmcheck(restored!);
        expect(amcheck?.ok, amcheck?.output).toBe(true);
      } finally {
        restored?.stopSync('immediate');
        source?.stopSync('immediate');
        volumes.destroy();
      }
    },
  );
});

describe('btrfs provider with a repository', () => {
  it.skipIf(unavailable !== undefined)(
    'drills a three-volume btrfs backup beside its running source, never touching the source WAL',
    async () => {
      const root = mkdtempSync(join(tmpdir(), 'pgsnap-btrfs-drill-'));
      chmodSync(root, 0o711);
      const volumes = new BtrfsVolumes(root);
      const repo = testRepository('file');
      let source: Cluster | undefined;
      try {
        const data = volumes.create('pgdata');
        const tablespace = volumes.create('ts1');
        const wal = volumes.create('pgwal');
        source = await Cluster.create({
          major: 15,
          root: ownedDir(join(root, 'cluster')),
          initdbAt: { dataDir: data.subvolume, walDir: wal.subvolume },
          settings: { archive_command: repo.archiveCommand() },
        });
        await source.query(`CREATE TABLESPACE ts1 LOCATION '${tablespace.subvolume}'`);
        await source.query(
          'CREATE TABLE t TABLESPACE ts1 AS SELECT g AS id FROM generate_series(1, 10000) g',
        );
        const env = { ...source.env, PGSNAP_STATE_DIR: join(root, 'state') };
        const ran = await pgsnap(['run', '--provider', 'btrfs', '--fast', '--json', ...repo.flags], env);
        expect(ran.code, ran.stderr).toBe(0);
        const walBefore = readdirSync(wal.subvolume).filter((f) => /^[0-9A-F]{24}$/.test(f));

        const drilled = await pgsnap(
          ['drill', '--backup-id', ran.json!.backupId as string, '--json', ...repo.flags],
          {},
        );
        expect(drilled.code, drilled.stderr).toBe(0);
        expect(drilled.json).toMatchObject({
          ok: true,
          provider: 'btrfs',
          check: { consistent: true, amcheck: 'passed' },
        });
        // The drill restored the WAL volume's snapshot beside it and used that: the source's segments are all there.
        const walAfter = readdirSync(wal.subvolume).filter((f) => /^[0-9A-F]{24}$/.test(f));
        expect(walAfter).toEqual(expect.arrayContaining(walBefore));
        await source.query('INSERT INTO t VALUES (0)');
        // Its scratch subvolumes are gone again.
        expect(readdirSync(join(wal.mountPoint, '.pgsnap', ran.json!.backupId as string))).toEqual(['pgwal']);

        // The same backup restored in one command: --from-snapshot clones each volume's snapshot in its
        // own file system, beside the running source, and recovery reads the repository's WAL.
        const backupId = ran.json!.backupId as string;
        const shown = await pgsnap(['backups', 'show', backupId, '--json', ...repo.flags], {});
        const oid = (shown.json!.snapshots as Array<{ role: string; tablespaceOid?: string }>).find(
          (s) => s.role === 'tablespace',
        )!.tablespaceOid!;
        const pgdata = join(data.mountPoint, 'restored');
        const tsTarget = join(tablespace.mountPoint, 'restored-ts');
        const walDir = ownedDir(join(root, 'restored-wal'));
        const restoredPrepare = await pgsnap(
          [
            ...['restore', '--backup-id', backupId, '--pgdata', pgdata, '--from-snapshot'],
            ...['--tablespace', `${oid}=${tsTarget}`, '--waldir', walDir, '--target', 'immediate', '--json'],
            ...repo.flags,
          ],
          {},
        );
        expect(restoredPrepare.code, restoredPrepare.stderr).toBe(0);
        expect(restoredPrepare.json).toMatchObject({
          fromSnapshot: { provider: 'btrfs', targets: [pgdata, tsTarget] },
        });
        // Cloned, not copied: each target is a btrfs subvolume of the volume its snapshot is on.
        expect(execFileSync('btrfs', ['subvolume', 'show', pgdata], { encoding: 'utf8' })).toContain(
          'restored',
        );
        expect(execFileSync('btrfs', ['subvolume', 'show', tsTarget], { encoding: 'utf8' })).toContain(
          'restored-ts',
        );
        const restoredServer = await Cluster.create({
          major: 15,
          root: ownedDir(join(root, 'restored-server')),
          dataDir: pgdata,
        });
        try {
          await restoredServer.waitForPromotion();
          const [row] = await restoredServer.query<{ n: string }>('SELECT count(*) AS n FROM t');
          expect(Number(row!.n)).toBe(10000);
        } finally {
          restoredServer.stopSync('immediate');
        }
        // The source's WAL volume was never touched by the restore.
        expect(readdirSync(wal.subvolume).filter((f) => /^[0-9A-F]{24}$/.test(f))).toEqual(
          expect.arrayContaining(walBefore),
        );
        await source.query('INSERT INTO t VALUES (-1)');
      } finally {
        source?.stopSync('immediate');
        volumes.destroy();
        repo.destroy();
      }
    },
  );
});

describe('copy and exec providers', () => {
  it('copies the data directory inside backup mode and refuses a command beside --provider copy', async () => {
    const source = await Cluster.create({ major: 15 });
    try {
      const env = { ...source.env, PGSNAP_STATE_DIR: join(source.root, 'state') };
      const snapshotDir = join(source.root, 'snapshots');
      const ran = await pgsnap(
        ['run', '--provider', 'copy', '--snapshot-dir', snapshotDir, '--fast', '--json'],
        env,
      );
      expect(ran.code, ran.stderr).toBe(0);
      const [snapshot] = ran.json!.snapshots as VolumeSnapshot[];
      expect(snapshot!.role).toBe('data');
      expect(readFileSync(join(snapshot!.snapshot, 'PG_VERSION'), 'utf8').trim()).toBe('15');

      const both = await pgsnap(
        ['run', '--provider', 'copy', '--snapshot-dir', snapshotDir, '--', 'true'],
        env,
      );
      expect(both.code).toBe(2);
      expect(both.stderr).toContain('cannot specify both --provider copy and a command after --');
      const noDir = await pgsnap(['run', '--provider', 'copy'], env);
      expect(noDir.code).toBe(2);
      expect(noDir.stderr).toContain('--provider copy needs --snapshot-dir DIR');
    } finally {
      source.destroy();
    }
  });

  it("runs the operator's command with the paths, keeps its reference, and aborts when it fails", async () => {
    const source = await Cluster.create({ major: 15 });
    try {
      const env = { ...source.env, PGSNAP_STATE_DIR: join(source.root, 'state') };
      const seen = join(source.root, 'seen');
      const ran = await pgsnap(
        [
          'run',
          '--provider',
          'exec',
          '--json',
          '--',
          'sh',
          '-c',
          `printf '%s' "$PGSNAP_PATHS" > ${seen}; echo snap-0123`,
        ],
        env,
      );
      expect(ran.code, ran.stderr).toBe(0);
      expect(readFileSync(seen, 'utf8')).toBe(`data ${source.dataDir}`);
      expect((ran.json!.snapshots as VolumeSnapshot[])[0]!.snapshot).toBe('snap-0123');

      const failed = await pgsnap(['run', '--provider', 'exec', '--json', '--', 'sh', '-c', 'exit 4'], env);
      expect(failed.code).toBe(1);
      expect(failed.json!.aborted).toBe(true);
      expect(String(failed.json!.reason)).toContain('the exec snapshot failed');
      const status = await pgsnap(['status', '--json'], env);
      expect(status.json!.inProgress).toBe(false);
    } finally {
      source.destroy();
      rmSync(join(source.root), { recursive: true, force: true });
    }
  });
});
