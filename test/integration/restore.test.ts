/**
 * The proof that the agent makes restorable backups: begin, copy the data
 * directory and a tablespace outside it while a writer inserts, end, restore the
 * copy with the returned backup_label and tablespace_map, recover from the
 * archived WAL, and find every row committed before `end` was called.
 */
import { execFile } from 'node:child_process';
import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runAmcheck } from '../../agent/restore/checks.ts';
import { prepareDataDirectory, sha256 } from '../../agent/restore/prepare.ts';
import { Cluster, chownTree, majorVersions, ownedDir } from '../support/cluster.ts';
import { pgsnap } from '../support/pgsnap.ts';
import { startWriter } from '../support/writer.ts';

const run = promisify(execFile);

interface Artifact {
  name: string;
  path: string;
  sha256: string;
}

describe.each(majorVersions)('PostgreSQL %i', (major) => {
  it('restores a copy taken between begin and end, with a tablespace outside PGDATA, to every committed row', async () => {
    const source = await Cluster.create({ major });
    let restored: Cluster | undefined;
    try {
      const tablespaceDir = ownedDir(join(source.root, 'ts1'));
      await source.query(`CREATE TABLESPACE ts1 LOCATION '${tablespaceDir}'`);
      await source.query('CREATE TABLE in_ts (id bigint PRIMARY KEY, payload text) TABLESPACE ts1');
      await source.query('CREATE TABLE in_base (id bigint PRIMARY KEY, payload text)');
      const env = { ...source.env, PGSNAP_STATE_DIR: join(source.root, 'state') };

      const writerClient = await source.client();
      const writer = startWriter(writerClient, ['in_ts', 'in_base']);
      try {
        const begun = await pgsnap(['begin', '--label', `restore proof ${major}`, '--fast', '--json'], env);
        expect(begun.code, begun.stderr).toBe(0);

        const backupDir = ownedDir(join(source.root, 'backup'));
        await run('cp', ['-a', source.dataDir, join(backupDir, 'data')]);
        await run('cp', ['-a', tablespaceDir, join(backupDir, 'ts1')]);

        const committedBeforeEnd = writer.lastCommitted;
        const ended = await pgsnap(['end', '--output', join(backupDir, 'artifacts'), '--json'], env);
        expect(ended.code, ended.stderr).toBe(0);
        await writer.stop();
        expect(committedBeforeEnd).toBeGreaterThan(0);

        const artifacts = ended.json!.artifacts as Artifact[];
        expect(artifacts.map((a) => a.name).sort()).toEqual(
          [
            'backup_label',
            'tablespace_map',
            expect.stringMatching(/^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/),
          ].sort(),
        );
        const file = (name: string) => readFileSync(join(backupDir, 'artifacts', name), 'utf8');
        for (const artifact of artifacts) expect(sha256(file(artifact.name))).toBe(artifact.sha256);
        expect(file('backup_label')).toContain(`LABEL: restore proof ${major}`);
        const tablespaceMap = file('tablespace_map');
        expect(tablespaceMap).toMatch(new RegExp(`^\\d+ ${tablespaceDir}\\n$`));

        // The replacement host: the source is gone and its tablespace path is where the copy goes back.
        source.stopSync('fast');
        renameSync(tablespaceDir, `${tablespaceDir}.lost`);
        renameSync(join(backupDir, 'ts1'), tablespaceDir);
        const restoredData = join(backupDir, 'data');
        prepareDataDirectory({
          pgdata: restoredData,
          backupLabel: file('backup_label'),
          tablespaceMap,
          expectedSha256: {
            backupLabel: artifacts.find((a) => a.name === 'backup_label')!.sha256,
            tablespaceMap: artifacts.find((a) => a.name === 'tablespace_map')!.sha256,
          },
          restoreCommand: `cp ${source.archiveDir}/%f %p`,
        });
        chownTree(backupDir);
        restored = await Cluster.fromCopy({
          major,
          root: backupDir,
          dataDir: restoredData,
          archiveDir: source.archiveDir,
        });
        await restored.waitForPromotion();

        for (const table of ['in_ts', 'in_base']) {
          const [row] = await restored.query<{ n: string; max: string }>(
            `SELECT count(*) FILTER (WHERE id <= $1) AS n, max(id) AS max FROM ${table}`,
            [committedBeforeEnd],
          );
          expect(Number(row!.n), `${table}: rows 1..${committedBeforeEnd} committed before end`).toBe(
            committedBeforeEnd,
          );
        }
        // Redo from the backup's start, not from a later checkpoint in the copied pg_control: the label was used.
        expect(restored.log()).toContain(`redo starts at ${begun.json!.startLsn}`);
        expect(restored.log()).toContain('consistent recovery state reached');
        const [ts] = await restored.query<{ location: string }>(
          "SELECT pg_tablespace_location(oid) AS location FROM pg_tablespace WHERE spcname = 'ts1'",
        );
        expect(ts!.location).toBe(tablespaceDir);

        const amcheck = runAmcheck(restored!);
        expect(amcheck?.ok, amcheck?.output).toBe(true);
      } finally {
        await writer.stop().catch(() => {});
        await writerClient.end().catch(() => {});
      }
    } finally {
      restored?.destroy();
      source.destroy();
    }
  });
});
