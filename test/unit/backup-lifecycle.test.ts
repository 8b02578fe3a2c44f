import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import {
  applyStep,
  type LifecycleState,
  lifecycle,
  type Step,
  type StepName,
} from '#domain/backup/lifecycle';
import { ManifestStateError } from '#domain/errors';
import { backupStates, type Manifest } from '#domain/repository/manifest';
import { openRepository } from '#domain/repository/open';
import type { VolumeSnapshot } from '../../agent/providers/provider.ts';
import { recordEnded, recordLocalSnapshots } from '../../agent/session/catalog.ts';
import { handler as recordBackup } from '../../functions/record-backup.ts';
import { testManifest } from '../support/manifests.ts';

const backupId = '20261121T143000Z-a1b2c3';
const where = 'file:///repo';
const at = '2026-11-21T14:30:00.000Z';
const later = '2026-11-21T15:00:00.000Z';

const snapshots = [
  { provider: 'ebs', snapshotId: 'snap-1', volumeId: 'vol-1', state: 'pending' },
  { provider: 'ebs', snapshotId: 'snap-2', volumeId: 'vol-2', state: 'pending' },
];

const begun: Manifest = testManifest({ backupId, timings: { startedAt: at }, updatedAt: at });

/** A manifest as it is in each state, with what the steps before wrote into it. */
function manifestIn(state: LifecycleState): Manifest | undefined {
  if (state === 'none') return undefined;
  return {
    ...begun,
    state,
    ...(state === 'started' ? {} : { snapshots }),
    ...(['stopped', 'completed'].includes(state)
      ? { stopLsn: '0/2000138', stopWalFile: '000000010000000000000002' }
      : {}),
    ...(state === 'failed' || state === 'aborted' ? { failure: { reason: 'the first reason', at } } : {}),
  };
}

const stop = {
  stopLsn: '0/2000138',
  stopWalFile: '000000010000000000000002',
  stopTimeline: 1,
  wal: { first: '000000010000000000000002', last: '000000010000000000000002' },
  artifacts: [{ name: 'backup_label', sha256: 'a'.repeat(64), bytes: 230 }],
  stoppedAt: at,
  archiveWaitMs: 12,
};

const steps: Record<StepName, Step> = {
  begin: { step: 'begin', manifest: begun },
  snapshotsTaken: { step: 'snapshotsTaken', snapshots },
  stop: { step: 'stop', begun, stop },
  end: { step: 'end', begun, stop },
  snapshotsCompleted: { step: 'snapshotsCompleted', snapshots },
  fail: { step: 'fail', reason: 'SnapshotFailedError: snap-2 is in state error' },
  abort: { step: 'abort', reason: 'aborted by operator' },
  snapshotsDeleted: {
    step: 'snapshotsDeleted',
    snapshots: snapshots.map((s) => ({ ...s, state: 'deleted' })),
  },
  snapshotsDescribed: {
    step: 'snapshotsDescribed',
    snapshots: [
      { provider: 'copy', snapshotId: '/snapshots/data', state: 'taken', role: 'data', path: '/pg' },
    ],
  },
};

/*
 * The whole matrix, written out rather than read from the table, so a change to the table is a change
 * here too: a state the step moves to, `=` (a repeat: ok and unchanged) or `refused`.
 */
const matrix: Record<StepName, Record<LifecycleState, LifecycleState | '=' | 'refused'>> = {
  //                  none        started         snapshotting    stopped      completed    failed     aborted
  begin: {
    none: 'started',
    started: 'refused',
    snapshotting: 'refused',
    stopped: 'refused',
    completed: 'refused',
    failed: 'refused',
    aborted: 'refused',
  },
  snapshotsTaken: {
    none: 'refused',
    started: 'snapshotting',
    snapshotting: '=',
    stopped: '=',
    completed: '=',
    failed: 'refused',
    aborted: 'refused',
  },
  stop: {
    none: 'stopped',
    started: 'stopped',
    snapshotting: 'stopped',
    stopped: '=',
    completed: '=',
    failed: 'refused',
    aborted: 'refused',
  },
  end: {
    // No snapshot recorded before the end: never completed from end alone (see the test below).
    none: 'stopped',
    started: 'stopped',
    snapshotting: 'completed',
    stopped: 'refused',
    completed: '=',
    failed: 'refused',
    aborted: 'refused',
  },
  snapshotsCompleted: {
    none: 'refused',
    started: 'refused',
    snapshotting: 'refused',
    stopped: 'completed',
    completed: '=',
    failed: 'refused',
    aborted: 'refused',
  },
  fail: {
    none: '=',
    started: 'failed',
    snapshotting: 'failed',
    stopped: 'failed',
    completed: 'refused',
    failed: '=',
    aborted: 'failed',
  },
  abort: {
    none: '=',
    started: 'aborted',
    snapshotting: 'aborted',
    stopped: 'aborted',
    completed: 'refused',
    failed: '=',
    aborted: '=',
  },
  snapshotsDeleted: {
    none: '=',
    started: 'started',
    snapshotting: 'snapshotting',
    stopped: 'stopped',
    completed: 'refused',
    failed: 'failed',
    aborted: 'aborted',
  },
  snapshotsDescribed: {
    none: 'refused',
    started: 'refused',
    snapshotting: 'snapshotting',
    stopped: 'stopped',
    completed: 'completed',
    failed: 'refused',
    aborted: 'refused',
  },
};

const allStates: LifecycleState[] = ['none', ...backupStates];
const cases = Object.entries(matrix).flatMap(([step, row]) =>
  allStates.map((state) => ({ step: step as StepName, state, expected: row[state] })),
);

describe('the manifest lifecycle, every step from every state', () => {
  test('the matrix covers every step of the table and every state', () => {
    expect(Object.keys(matrix).sort()).toEqual(Object.keys(lifecycle).sort());
    for (const row of Object.values(matrix)) expect(Object.keys(row).sort()).toEqual([...allStates].sort());
  });

  test.each(cases.filter((c) => c.expected !== '=' && c.expected !== 'refused'))(
    '$step from $state moves the manifest to $expected',
    ({ step, state, expected }) => {
      const current = manifestIn(state);
      const { manifest, changed } = applyStep(current, steps[step], { backupId, where }, later);
      expect(changed).toBe(true);
      expect(manifest?.state).toBe(expected);
      expect(manifest?.updatedAt).toBe(later);
    },
  );

  test('end with no snapshot recorded leaves the backup stopped with a note; with one, it completes', () => {
    const without = applyStep(manifestIn('started'), steps.end, { backupId, where }, later).manifest!;
    expect(without).toMatchObject({ state: 'stopped', note: expect.stringContaining('--snapshot REF') });
    expect(without.timings.completedAt).toBeUndefined();
    const taken = applyStep(
      manifestIn('started'),
      { step: 'snapshotsTaken', snapshots },
      { backupId, where },
      later,
    );
    expect(applyStep(taken.manifest, steps.end, { backupId, where }, later).manifest?.state).toBe(
      'completed',
    );
  });

  test.each(cases.filter((c) => c.expected === '='))(
    '$step from $state is a repeat: ok, and the manifest is left as it is',
    ({ step, state }) => {
      const current = manifestIn(state);
      expect(applyStep(current, steps[step], { backupId, where }, later)).toEqual({
        manifest: current,
        changed: false,
      });
    },
  );

  test.each(cases.filter((c) => c.expected === 'refused'))(
    '$step from $state is refused with a ManifestStateError that names the state',
    ({ step, state }) => {
      const current = manifestIn(state);
      let thrown: unknown;
      try {
        applyStep(current, steps[step], { backupId, where }, later);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(ManifestStateError);
      expect(thrown).toMatchObject({ name: 'ManifestStateError', backupId, state });
      expect((thrown as Error).message).toContain(backupId);
      expect((thrown as Error).message).toContain(
        state === 'none' ? `no manifest in ${where}` : `is ${state}`,
      );
    },
  );
});

describe('what the steps write', () => {
  test('end writes the stop, the artifacts and completedAt over what begin wrote', () => {
    const { manifest } = applyStep(manifestIn('snapshotting'), steps.end, { backupId, where }, later);
    expect(manifest).toMatchObject({
      state: 'completed',
      stopLsn: '0/2000138',
      snapshots,
      artifacts: [{ name: 'backup_label' }],
      timings: { startedAt: at, stoppedAt: at, archiveWaitMs: 12, completedAt: later },
    });
  });

  test('snapshots taken again with other ids is refused: the first ones would be orphaned', () => {
    const other = [{ provider: 'ebs', snapshotId: 'snap-9', volumeId: 'vol-1', state: 'pending' }];
    expect(() =>
      applyStep(
        manifestIn('snapshotting'),
        { step: 'snapshotsTaken', snapshots: other },
        { backupId, where },
      ),
    ).toThrow(/is snapshotting with snapshots snap-1, snap-2; recording snap-9 in their place would orphan/);
  });

  test('a failure after an abort records the failure; a second failure keeps the first reason', () => {
    const failed = applyStep(manifestIn('aborted'), steps.fail, { backupId, where }, later).manifest;
    expect(failed?.failure).toEqual({ reason: 'SnapshotFailedError: snap-2 is in state error', at: later });
    const again = applyStep(failed, { step: 'fail', reason: 'another' }, { backupId, where }, later);
    expect(again.manifest?.failure?.reason).toBe('SnapshotFailedError: snap-2 is in state error');
  });

  test('snapshots completed marks every snapshot completed and keeps an earlier completedAt', () => {
    const stopped = { ...manifestIn('stopped')!, timings: { startedAt: at, completedAt: at } };
    const { manifest } = applyStep(stopped, steps.snapshotsCompleted, { backupId, where }, later);
    expect(manifest?.snapshots.map((s) => s.state)).toEqual(['completed', 'completed']);
    expect(manifest?.timings.completedAt).toBe(at);
  });
});

describe('the agent and the Lambda follow the same rules', () => {
  let dir: string;
  /** Two repositories with the same manifest in each: one for the agent's step, one for the Lambda's. */
  let agentUrl: string;
  let lambdaUrl: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pgsnap-lifecycle-'));
    mkdirSync(join(dir, 'agent'));
    mkdirSync(join(dir, 'lambda'));
    agentUrl = `file://${dir}/agent`;
    lambdaUrl = `file://${dir}/lambda`;
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function write(url: string, manifest: Manifest | undefined): Promise<void> {
    const repository = await openRepository(url, 'orders-db');
    if (manifest) await repository.writeManifest(manifest);
    repository.close();
  }
  async function read(url: string): Promise<Manifest | undefined> {
    const repository = await openRepository(url, 'orders-db');
    try {
      return await repository.readManifest(backupId);
    } finally {
      repository.close();
    }
  }
  const outcome = (run: () => Promise<unknown>) =>
    run().then(
      () => 'ok',
      (error: Error) => error.name,
    );

  test.each(allStates)(
    'marking a %s backup failed: pgsnap end and the state machine agree',
    async (state) => {
      await write(agentUrl, manifestIn(state));
      await write(lambdaUrl, manifestIn(state));
      const agent = await outcome(() =>
        recordEnded({ url: agentUrl, cluster: 'orders-db' }, backupId, 'failed', 'lost'),
      );
      const lambda = await outcome(() =>
        recordBackup({
          state: 'failed',
          cluster: 'orders-db',
          backupId,
          repository: lambdaUrl,
          error: { Error: 'BackupInvalidError', Cause: 'lost' },
        }),
      );
      expect(agent).toBe(lambda);
      expect(agent).toBe(matrix.fail[state] === 'refused' ? 'ManifestStateError' : 'ok');
      expect((await read(agentUrl))?.state).toBe((await read(lambdaUrl))?.state);
    },
  );

  test.each(allStates)(
    'recording snapshots of a %s backup: pgsnap run and the state machine agree',
    async (state) => {
      const taken: VolumeSnapshot[] = [{ snapshot: 'snap-1', role: 'data', source: '/pg' }];
      await write(agentUrl, manifestIn(state));
      await write(lambdaUrl, manifestIn(state));
      const agent = await outcome(() =>
        recordLocalSnapshots({ url: agentUrl, cluster: 'orders-db' }, backupId, 'ebs', taken, 'taken'),
      );
      const lambda = await outcome(() =>
        recordBackup({
          state: 'snapshotting',
          cluster: 'orders-db',
          backupId,
          repository: lambdaUrl,
          snapshots: [{ snapshotId: 'snap-1', volumeId: 'vol-1', state: 'pending' }],
        }),
      );
      expect(agent).toBe(lambda);
      expect((await read(agentUrl))?.state).toBe((await read(lambdaUrl))?.state);
    },
  );

  test('a repeat writes nothing: the manifest keeps its updatedAt', async () => {
    await write(agentUrl, manifestIn('failed'));
    await recordEnded(
      { url: agentUrl, cluster: 'orders-db' },
      backupId,
      'aborted',
      'aborted by the state machine',
    );
    expect(await read(agentUrl)).toEqual(manifestIn('failed'));
  });
});
