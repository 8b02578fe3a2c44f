/**
 * A backup whose session was lost (the holder killed) or that ran past its
 * maximum duration is marked failed in the repository, with the reason, when
 * `end` finds out; an aborted one keeps saying aborted.
 */
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { Cluster } from '../support/cluster.ts';
import { pgsnap } from '../support/pgsnap.ts';
import { testRepository } from '../support/repository.ts';

it('marks the manifest failed when end finds the session lost or expired, and leaves an abort as it is', async () => {
  const repo = testRepository('file');
  const source = await Cluster.create({ settings: { archive_command: repo.archiveCommand() } });
  try {
    const env = { ...source.env, PGSNAP_STATE_DIR: join(source.root, 'state') };
    const show = async (backupId: string) =>
      (await pgsnap(['backups', 'show', backupId, '--json', ...repo.flags], env)).json!;

    const killed = await pgsnap(['begin', '--label', 'killed', '--fast', '--json', ...repo.flags], env);
    expect(killed.code, killed.stderr).toBe(0);
    process.kill(killed.json!.holderPid as number, 'SIGKILL');
    const afterKill = await pgsnap(['end', '--json', ...repo.flags], env);
    expect(afterKill.code).toBe(1);
    expect(await show(killed.json!.backupId as string)).toMatchObject({
      state: 'failed',
      failure: { reason: expect.stringContaining('is not valid') },
    });

    const expiring = await pgsnap(
      ['begin', '--label', 'expiring', '--fast', '--max-duration', '1s', '--json', ...repo.flags],
      env,
    );
    expect(expiring.code, expiring.stderr).toBe(0);
    await new Promise((r) => setTimeout(r, 2_500));
    expect((await pgsnap(['end', ...repo.flags], env)).code).toBe(1);
    expect(await show(expiring.json!.backupId as string)).toMatchObject({
      state: 'failed',
      failure: { reason: expect.stringContaining('maximum duration') },
    });

    const aborted = await pgsnap(['begin', '--label', 'aborted', '--fast', '--json', ...repo.flags], env);
    expect((await pgsnap(['abort', '--reason', 'changed my mind', ...repo.flags], env)).code).toBe(0);
    expect((await pgsnap(['end', ...repo.flags], env)).code).toBe(1);
    expect(await show(aborted.json!.backupId as string)).toMatchObject({
      state: 'aborted',
      failure: { reason: 'changed my mind' },
    });
  } finally {
    source.destroy();
    repo.destroy();
  }
});
