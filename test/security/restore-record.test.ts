/**
 * The restore record cannot be swapped, and the repository is the target's
 * own (issue 28): the restore SSM document carries the digest of the record
 * the state machine wrote, and no repository; the agent, run by that
 * document as root with root's pgsnap.env, refuses a record rewritten after
 * the attach step (as a database host that can write `restores/*` would) and
 * restores only from the repository in its settings.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentSettingsLine } from '../../infra/backup/agent-document.ts';
import { restoreDocumentParameters, restoreDocumentScript } from '../../infra/restore/restore-document.ts';
import { renderDocument, replaceLine, runScript } from '../../local/agent-document.ts';
import { TaskFailure, TaskTokenEndpoint } from '../../local/task-token-endpoint.ts';
import { pgsnapBin } from '../support/pgsnap.ts';
import { documentPathLine, fakeBinDir } from '../support/ssm-document.ts';
import {
  type Backup,
  mountsBelow,
  rewriteRecordRaw,
  skipReason,
  type Target,
  takeBackup,
  target,
  unmountBelow,
} from './hostile-restore.ts';

const skip = skipReason('the restore record and document tests');

let backup: Backup;
const targets: Target[] = [];
let endpoint: TaskTokenEndpoint;

beforeAll(async () => {
  if (skip) return;
  backup = await takeBackup();
  endpoint = await TaskTokenEndpoint.start();
}, 120_000);

afterAll(async () => {
  await endpoint?.close();
  for (const t of targets) unmountBelow(t.dir);
  backup?.source.destroy();
  backup?.repo.destroy();
});

const document = { parameters: restoreDocumentParameters, runCommand: [...restoreDocumentScript] };

/**
 * Runs the restore document on the target as SSM would: root, the agent on
 * PATH, root's settings file (PGSNAP_REPO and the rest, as pgsnap.env holds
 * them) sourced by the document itself. Returns how the agent answered.
 */
async function runRestoreDocument(
  t: Target,
  values: Record<string, string>,
): Promise<{ failure?: TaskFailure; answer?: unknown; stderr: string }> {
  const settings = join(t.dir, 'pgsnap.env');
  const lines = Object.entries({ ...t.env, PGSNAP_REPO: backup.repo.url }).map(([k, v]) => `${k}='${v}'`);
  writeFileSync(settings, `${lines.join('\n')}\n`, { mode: 0o600 });
  chmodSync(t.dir, 0o711);
  const bin = fakeBinDir(join(t.dir, 'bin'), `#!/bin/sh\nexec ${process.execPath} ${pgsnapBin} "$@"\n`);
  let script = renderDocument(document, values);
  script = replaceLine(script, documentPathLine, `export PATH=${bin}:/usr/bin:/bin:/usr/sbin:/sbin`);
  script = replaceLine(script, agentSettingsLine, `settings=${settings}`);
  const token = values.taskToken!;
  const answer = endpoint.answerFor(token).then(
    (value) => ({ answer: value }),
    (error: unknown) => ({ failure: error as TaskFailure }),
  );
  const ran = await runScript(script, { ...endpoint.env });
  return { ...(await answer), stderr: ran.stderr };
}

function values(t: Target, command: 'restore' | 'teardown', recordSha256: string, taskToken: string) {
  return {
    command,
    cluster: backup.repo.cluster,
    restoreId: t.restoreId,
    recordSha256,
    heartbeatSeconds: '300',
    taskToken,
  };
}

describe.skipIf(skip !== undefined)('the restore record cannot be swapped', () => {
  it('refuses a record rewritten after the state machine wrote it, mounting and running nothing', async () => {
    const t = await target(backup, 'rewritten');
    targets.push(t);
    // The hostile host's version: a SQL "check" that runs a program, and the data volume somewhere else.
    rewriteRecordRaw(backup, t.restoreId, {
      ...t.record,
      checks: {
        amcheck: 'none',
        sql: { database: 'postgres', query: "COPY (SELECT 1) TO PROGRAM 'touch /tmp/pwned'", expect: '1' },
      },
      mountRoot: join(t.dir, 'other'),
    });
    const ran = await runRestoreDocument(t, values(t, 'restore', t.digest, 'token-rewritten'));
    expect(ran.failure, ran.stderr).toBeInstanceOf(TaskFailure);
    expect(ran.failure).toMatchObject({ name: 'RestoreRecordMismatchError' });
    expect(mountsBelow(t.dir)).toEqual([]);
  });

  it('acts on the record whose digest the document carries, and only on it', async () => {
    const t = await target(backup, 'pinned');
    targets.push(t);
    const wrong = await runRestoreDocument(t, values(t, 'teardown', '0'.repeat(64), 'token-wrong-digest'));
    expect(wrong.failure).toMatchObject({ name: 'RestoreRecordMismatchError' });
    const right = await runRestoreDocument(t, values(t, 'teardown', t.digest, 'token-right-digest'));
    expect(right.failure, right.stderr).toBeUndefined();
    expect(right.answer).toMatchObject({ restoreId: t.restoreId, server: 'not running' });
  });

  it('takes no repository from the document: a file:// or any other one is refused as SSM refuses a parameter', async () => {
    const t = await target(backup, 'repository');
    targets.push(t);
    for (const repository of ['file:///tmp/attacker', 's3://another-bucket/pg', backup.repo.url]) {
      expect(() => renderDocument(document, { ...values(t, 'restore', t.digest, 'x'), repository })).toThrow(
        /refused/,
      );
    }
    // The rendered script names no repository: the agent's is root's PGSNAP_REPO.
    const script = renderDocument(document, values(t, 'restore', t.digest, 'x'));
    expect(script).not.toMatch(/--repo\b/);
  });
});
