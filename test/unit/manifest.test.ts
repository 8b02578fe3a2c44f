import { describe, expect, it } from 'vitest';
import { type Manifest, parseManifest, validateManifest } from '#domain/repository/manifest';

const manifest: Manifest = {
  schemaVersion: 1,
  cluster: 'orders-db',
  backupId: '20261121T143000Z-a1b2c3',
  label: 'nightly',
  state: 'completed',
  systemIdentifier: '7710631090410220509',
  serverVersion: '15.18',
  backupFrom: 'primary',
  walSegmentSize: 16777216,
  timeline: 1,
  startLsn: '0/5000028',
  startWalFile: '000000010000000000000005',
  stopLsn: '0/6000100',
  stopWalFile: '000000010000000000000006',
  stopTimeline: 1,
  wal: { first: '000000010000000000000005', last: '000000010000000000000006' },
  artifacts: [{ name: 'backup_label', sha256: 'a'.repeat(64), bytes: 230 }],
  snapshots: [],
  timings: {
    startedAt: '2026-11-21T14:30:00.000Z',
    stoppedAt: '2026-11-21T14:30:05.000Z',
    archiveWaitMs: 40,
  },
  host: 'db1',
  updatedAt: '2026-11-21T14:30:06.000Z',
};

describe('the manifest schema', () => {
  it('reads back what it wrote', () => {
    expect(parseManifest(Buffer.from(JSON.stringify(manifest)), 'm.json')).toEqual(manifest);
  });

  it('names every field that is wrong', () => {
    const bad = { ...manifest, state: 'done', startLsn: '5000028', extra: 1 };
    expect(() => validateManifest(bad, 's3://b/orders-db/backups/x/manifest.json')).toThrow(
      /manifest\.json is not a valid manifest: .*state.*startLsn: an LSN such as 16\/B374D848.*extra/s,
    );
  });

  it('refuses a truncated file and a newer schema, saying what to do', () => {
    const text = JSON.stringify(manifest);
    expect(() => parseManifest(Buffer.from(text.slice(0, 100)), 'm.json')).toThrow(
      /not JSON; it was truncated/,
    );
    expect(() =>
      parseManifest(Buffer.from(JSON.stringify({ ...manifest, schemaVersion: 2 })), 'm.json'),
    ).toThrow(/schemaVersion 2; this pgsnap reads version 1: upgrade pgsnap/);
  });
});
