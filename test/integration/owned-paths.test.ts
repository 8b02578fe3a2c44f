/**
 * Directories root makes beside the server user's files (btrfs snapshots, a
 * drill's servers): a link that `postgres` planted under the predictable name
 * is refused, and what it pointed at is not handed to postgres.
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { snapshotDirectory } from '../../agent/providers/btrfs.ts';
import { asPostgres, ownedDir } from '../support/cluster.ts';

const notRoot =
  process.getuid?.() === 0 ? undefined : 'they need root, which takes snapshots and runs drills';
if (notRoot && process.env.CI) throw new Error(`CI must run the planted-link tests, but ${notRoot}`);
if (notRoot) console.warn(`SKIPPING the planted-link tests of root-made directories: ${notRoot}`);

/** A directory of root's that postgres must not get, and a directory postgres owns, as on a database host. */
function victimAndVolume(): { victim: string; volume: string } {
  const root = mkdtempSync(join(tmpdir(), 'pgsnap-owned-paths-'));
  onTestFinished(() => rmSync(root, { recursive: true, force: true }));
  chmodSync(root, 0o711);
  const victim = join(root, 'victim');
  mkdirSync(victim, { mode: 0o755 });
  return { victim, volume: ownedDir(join(root, 'volume'), 0o755) };
}

describe.skipIf(notRoot !== undefined)('root-made directories beside the server user’s files', () => {
  it('btrfs: a planted .pgsnap link is refused, and its target is neither changed nor given to postgres', () => {
    const { victim, volume } = victimAndVolume();
    asPostgres('ln', ['-s', victim, join(volume, '.pgsnap')]);
    expect(() => snapshotDirectory(join(volume, 'pgdata'), '20260101T000000Z-abcdef')).toThrow(
      `${join(volume, '.pgsnap')} is a symbolic link`,
    );
    expect(readdirSync(victim)).toEqual([]);
    expect(statSync(victim).uid).toBe(0);
  });

  it('btrfs: the snapshot directories stay root’s, so postgres cannot plant a drill target inside', () => {
    const { volume } = victimAndVolume();
    const dir = snapshotDirectory(join(volume, 'pgdata'), '20260101T000000Z-abcdef');
    for (const d of [join(volume, '.pgsnap'), dir]) {
      expect(statSync(d).uid).toBe(0);
      expect(statSync(d).mode & 0o777).toBe(0o711);
    }
    const planted = asPostgres('ln', ['-s', '/', join(dir, 'drill-x')], { allowFailure: true });
    expect(planted.status).not.toBe(0);
  });

  it('a directory made for the server user under a name postgres planted as a link is refused', () => {
    const { victim, volume } = victimAndVolume();
    asPostgres('ln', ['-s', victim, join(volume, 'drill-server')]);
    expect(() => ownedDir(join(volume, 'drill-server'))).toThrow(
      `${join(volume, 'drill-server')} is a symbolic link`,
    );
    expect(statSync(victim).uid).toBe(0);
    expect(statSync(victim).mode & 0o777).toBe(0o755);
  });
});
