/**
 * WAL objects are zstd frames made by one of two codecs: node:zlib's on
 * Node.js 22.15 and later (the single executables carry Node.js 24), the
 * native @mongodb-js/zstd binding on older Node.js (this project's Node.js
 * 20). A host archives with one and a restore may fetch with the other, so
 * each must read what the other wrote, byte for byte. The Node.js 24 side is
 * the pinned Node.js of the x64 executable (agent/node-binaries.mjs) running
 * the same bundle.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../support/cluster.ts';
import { pgsnap } from '../support/pgsnap.ts';
import { waitFor } from '../support/wait.ts';

const node24 = execFileSync(
  process.execPath,
  [resolve(import.meta.dirname, '../../agent/node-binaries.mjs'), 'x64'],
  { encoding: 'utf8' },
).trim();
const sides = {
  'Node.js 24 (node:zlib)': { node: node24, codec: /WAL codec: zstd from node:zlib/ },
  'Node.js 20 (@mongodb-js/zstd)': {
    node: process.execPath,
    codec: /WAL codec: zstd from @mongodb-js\/zstd/,
  },
};
type Side = keyof typeof sides;

let cluster: Cluster;
let work: string;
/** The archived segments, with real content: a table's rows and its index. */
let segments: string[];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pgsnap-codecs-'));
  cluster = await Cluster.create({ major: 15 });
  await cluster.query(
    'CREATE TABLE filler AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 150000) g',
  );
  await cluster.query('CREATE INDEX ON filler (v)');
  const [switched] = await cluster.query<{ segment: string }>(
    'SELECT pg_walfile_name(pg_switch_wal()) AS segment',
  );
  const last = switched!.segment;
  segments = await waitFor(
    `${last} archived`,
    async () => {
      const archived = readdirSync(cluster.archiveDir).filter((name) => /^[0-9A-F]{24}$/.test(name));
      return archived.includes(last) ? archived.sort() : undefined;
    },
    { cluster },
  );
}, 180_000);

afterAll(() => {
  cluster?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('WAL objects written by one zstd codec are read by the other', () => {
  it('each side says which codec it uses', async () => {
    for (const side of Object.values(sides)) {
      const version = await pgsnap(['--version'], {}, { node: side.node });
      expect(version.code).toBe(0);
      expect(version.stdout).toMatch(side.codec);
    }
  });

  for (const [writer, reader] of [
    ['Node.js 24 (node:zlib)', 'Node.js 20 (@mongodb-js/zstd)'],
    ['Node.js 20 (@mongodb-js/zstd)', 'Node.js 24 (node:zlib)'],
  ] as Array<[Side, Side]>) {
    it(`segments archived by ${writer} are fetched by ${reader}, byte for byte`, async () => {
      const dir = mkdtempSync(join(work, 'repo-'));
      const repo = ['--repo', `file://${dir}`, '--cluster', 'codecs'];
      for (const segment of segments) {
        const pushed = await pgsnap(
          ['wal-push', join(cluster.archiveDir, segment), ...repo],
          {},
          { node: sides[writer].node },
        );
        expect(pushed.stderr).toBe('');
        expect(pushed.code).toBe(0);
        const fetched = await pgsnap(
          ['wal-fetch', segment, join(dir, `${segment}.fetched`), ...repo],
          {},
          { node: sides[reader].node },
        );
        expect(fetched.stderr).toBe('');
        expect(fetched.code).toBe(0);
        expect(
          readFileSync(join(dir, `${segment}.fetched`)).equals(
            readFileSync(join(cluster.archiveDir, segment)),
          ),
        ).toBe(true);
      }
    });
  }
});
