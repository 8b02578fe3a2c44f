/**
 * Ids are checked at the edge: a Lambda given a malformed backupId, restoreId
 * or cluster name refuses the event before it calls AWS, with a message that
 * names the event's field (no CLI flag); the agent's flags keep their own words.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, test } from 'vitest';
import { InvalidInputError, UsageError } from '#domain/errors';
import { validateBackupId, validateClusterName } from '#domain/ids';
import { createSnapshotsHandler } from '../../functions/create-snapshots.ts';
import { deleteSnapshotsHandler } from '../../functions/delete-snapshots.ts';
import { handler as recordRestore } from '../../functions/record-restore.ts';
import { terminateRestoreInstanceHandler } from '../../functions/terminate-restore-instance.ts';

const ec2 = mockClient(EC2Client);
afterEach(() => ec2.reset());

const createEvent = {
  cluster: 'orders-db',
  backupId: '20261121T143000Z-a1b2c3',
  instanceId: 'i-0123456789abcdef0',
  volumeIds: ['vol-0123456789abcdef0'],
  begin: {},
};

async function refusal(run: () => Promise<unknown>): Promise<Error> {
  // A handler may throw before it returns its promise: both count as a refusal.
  const error = await Promise.resolve()
    .then(run)
    .then(
      () => undefined,
      (e: unknown) => e as Error,
    );
  if (!error) throw new Error('the handler accepted the event');
  return error;
}

describe('a Lambda refuses a malformed id before any AWS call', () => {
  test('create-snapshots: a backupId that is a path', async () => {
    const error = await refusal(() =>
      createSnapshotsHandler(new EC2Client({}))({ ...createEvent, backupId: '../../etc' }),
    );
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.message).toMatch(/^the create-snapshots event is not valid: backupId: expected a backupId/);
    expect(error.message).not.toMatch(/--/);
    expect(ec2.calls()).toHaveLength(0);
  });

  test('create-snapshots: a cluster name with capitals', async () => {
    const error = await refusal(() =>
      createSnapshotsHandler(new EC2Client({}))({ ...createEvent, cluster: 'Orders' }),
    );
    expect(error.message).toMatch(/cluster: expected 1-63 lower-case letters/);
    expect(error.message).not.toMatch(/--cluster/);
    expect(ec2.calls()).toHaveLength(0);
  });

  test('delete-snapshots: a backupId that would match every tag', async () => {
    const error = await refusal(() => deleteSnapshotsHandler(new EC2Client({}))({ backupId: '*' }));
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.message).toMatch(/backupId: expected a backupId of the form 20261121T143000Z-a1b2c3/);
    expect(ec2.calls()).toHaveLength(0);
  });

  test('terminate-restore-instance: a restoreId that is not one', async () => {
    const error = await refusal(() =>
      terminateRestoreInstanceHandler(new EC2Client({}))({ restoreId: '20261121T143000Z-a1b2c3' }),
    );
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.message).toMatch(
      /^the terminate-restore-instance event is not valid: restoreId: expected a restoreId of the form r-/,
    );
    expect(ec2.calls()).toHaveLength(0);
  });

  test('record-restore: a restoreId with a slash never reaches the repository', async () => {
    const error = await refusal(() =>
      recordRestore({
        restoreId: 'r-../../x',
        cluster: 'orders-db',
        repository: 'file:///nonexistent',
        update: { phase: 'available' },
      }),
    );
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.message).toMatch(/restoreId: expected a restoreId/);
  });
});

describe("the agent's flags keep their own words", () => {
  test('--backup-id', () => {
    expect(() => validateBackupId('../../etc')).toThrow(UsageError);
    expect(() => validateBackupId('../../etc')).toThrow(
      /^--backup-id "..\/..\/etc" is not a backupId; expected the form 20261121T143000Z-a1b2c3$/,
    );
  });

  test('cluster name', () => {
    expect(() => validateClusterName('Orders')).toThrow(/^cluster name "Orders" is not valid: use 1-63/);
  });
});
