/**
 * The CLI contract under bad input, against real PostgreSQL 15: bad labels,
 * unknown, repeated and missing flags, nothing to end, no server, wrong
 * credentials. Each is refused with the documented exit code (2 usage,
 * 3 precondition, 1 failure) and a message that says what to do, and leaves
 * nothing in backup mode.
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clusterForTest, expectNotInBackup } from '../support/backup-mode.ts';
import { freePort } from '../support/cluster.ts';
import { type CliResult, pgsnap } from '../support/pgsnap.ts';

/** With --json, an error is one JSON document on stdout; people read the same message on stderr. */
function expectError(result: CliResult, code: number, name: string, message: string | RegExp): void {
  expect(result.code, result.stderr).toBe(code);
  const expected =
    typeof message === 'string' ? expect.stringContaining(message) : expect.stringMatching(message);
  expect(result.json).toEqual({ error: { name, message: expected } });
  const { error } = result.json as { error: { message: string } };
  expect(result.stderr).toContain(`pgsnap: ${error.message}`);
}

describe('bad labels are refused before a backup starts', () => {
  it.for([
    [
      'a newline, which would forge a backup_label line',
      'nightly\nLABEL: forged',
      /it has "\\n" at position 8/,
    ],
    ['nothing in it', '', /--label must not be empty; use for example --label nightly/],
  ])('a label with %s', async ([, label, message]) => {
    const { cluster, env } = await clusterForTest();
    const result = await pgsnap(['begin', '--label', label as string, '--json'], env);
    expectError(result, 2, 'UsageError', message as RegExp);
    await expectNotInBackup(cluster, env);
  });

  it('a label over 128 characters is refused; 128, the most the SSM document carries, is accepted', async () => {
    const { cluster, env } = await clusterForTest();
    const tooLong = await pgsnap(['begin', '--label', 'x'.repeat(129), '--json'], env);
    expectError(
      tooLong,
      2,
      'UsageError',
      /--label is 129 characters; a backup takes at most 128 .*, so shorten it/,
    );
    await expectNotInBackup(cluster, env);

    const longest = await pgsnap(['begin', '--label', 'x'.repeat(128), '--fast', '--json'], env);
    expect(longest.code, longest.stderr).toBe(0);
    const ended = await pgsnap(['end', '--json'], env);
    expect(ended.code, ended.stderr).toBe(0);
    const label = (ended.json!.artifacts as Array<{ name: string; content: string }>).find(
      (a) => a.name === 'backup_label',
    );
    expect(label?.content).toContain(`LABEL: ${'x'.repeat(128)}\n`);
  });

  it('labels with shell metacharacters are refused, by begin and by run, naming the character', async () => {
    const { cluster, env, stateDir } = await clusterForTest();
    for (const [label, character] of [
      ['nightly; rm -rf /', ';'],
      ['$(reboot)', '$'],
      ['`id`', '`'],
      ['a|b', '|'],
      ['a && b', '&'],
      ['a > /etc/passwd', '>'],
      ["it's", "'"],
      ['say "hi"', '"'],
    ] as const) {
      const result = await pgsnap(['begin', '--label', label, '--json'], env);
      expectError(
        result,
        2,
        'UsageError',
        `--label may contain only letters, digits, space and . _ : @ + = , / - ; it has ${JSON.stringify(character)}`,
      );
    }
    const marker = join(stateDir, 'snapshot-taken');
    const run = await pgsnap(['run', '--label', 'x; y', '--', 'touch', marker], env);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--label may contain only');
    expect(existsSync(marker)).toBe(false);
    await expectNotInBackup(cluster, env);
  });
});

describe('flags are parsed strictly', () => {
  it('unknown commands and flags are usage errors that point at --help', async () => {
    const { cluster, env } = await clusterForTest();
    expectError(
      await pgsnap(['begin', '--label', 'nightly', '--frobnicate', '--json'], env),
      2,
      'UsageError',
      /Unknown option '--frobnicate'.*Run pgsnap begin --help for usage/,
    );
    expectError(
      await pgsnap(['end', '--label', 'nightly', '--json'], env),
      2,
      'UsageError',
      /Unknown option '--label'.*Run pgsnap end --help for usage/,
    );
    expectError(
      await pgsnap(['begin', 'nightly', '--json'], env),
      2,
      'UsageError',
      /Unexpected argument 'nightly'.*Run pgsnap begin --help/,
    );
    const unknownCommand = await pgsnap(['backup-now'], env);
    expect(unknownCommand.code).toBe(2);
    expect(unknownCommand.stderr).toContain('unknown command "backup-now"');
    expect(unknownCommand.stderr).toContain('usage: pgsnap <command>');
    await expectNotInBackup(cluster, env);
  });

  it('missing, repeated and malformed flags are usage errors that say what to give', async () => {
    const { cluster, env } = await clusterForTest();
    expectError(
      await pgsnap(['begin', '--json'], env),
      2,
      'UsageError',
      /--label is required, e.g. pgsnap begin --label nightly/,
    );
    expectError(
      await pgsnap(['begin', '--json', '--label'], env),
      2,
      'UsageError',
      /--label <value>' argument missing/,
    );
    expectError(
      await pgsnap(['begin', '--label', 'nightly', '--label', 'weekly', '--json'], env),
      2,
      'UsageError',
      /--label is given 2 times \("nightly", "weekly"\); give it once/,
    );
    expectError(
      await pgsnap(['begin', '--label', 'nightly', '--max-duration', '3600', '--json'], env),
      2,
      'UsageError',
      /--max-duration "3600" is not a duration; use for example 90s, 15m, 1h or 1h30m/,
    );
    expectError(
      await pgsnap(['run', '--label', 'nightly', '--json'], env),
      2,
      'UsageError',
      /give the snapshot command after --, e.g. pgsnap run --label nightly -- .\/snap.sh/,
    );
    await expectNotInBackup(cluster, env);
  });

  it('end and abort with nothing in progress are refused as a precondition (exit 3)', async () => {
    const { cluster, env } = await clusterForTest();
    expectError(
      await pgsnap(['end', '--json'], env),
      3,
      'PreconditionError',
      /no backup is in progress here; start one with pgsnap begin/,
    );
    expectError(
      await pgsnap(['abort', '--json'], env),
      3,
      'PreconditionError',
      /no backup is in progress here; nothing to abort/,
    );
    await expectNotInBackup(cluster, env);
  });
});

describe('connection failures say how to connect', () => {
  it('with no server listening, begin and preflight fail (exit 1) saying to start it or set PGHOST/PGPORT', async () => {
    const { cluster, env } = await clusterForTest();
    const nowhere = String(await freePort());
    for (const target of [{ PGPORT: nowhere }, { PGHOST: '127.0.0.1', PGPORT: nowhere }]) {
      for (const args of [
        ['begin', '--label', 'nightly', '--json'],
        ['preflight', '--json'],
      ]) {
        expectError(
          await pgsnap(args, { ...env, ...target }),
          1,
          'ConnectionError',
          /no server is listening\. Start the server, or point PGHOST\/PGPORT at it/,
        );
      }
    }
    // The failed begin never started a backup: end has nothing to end, and says why.
    expectError(
      await pgsnap(['end', '--json'], { ...env, PGPORT: nowhere }),
      3,
      'PreconditionError',
      /no backup is in progress here: the last begin \(\S+\) failed at .*: cannot connect to PostgreSQL/,
    );
    await expectNotInBackup(cluster, env);
  });

  it('with wrong or missing credentials, begin fails (exit 1) naming PGPASSWORD and PGPASSFILE', async () => {
    const { cluster, env, stateDir } = await clusterForTest();
    await cluster.query("CREATE ROLE backup_operator LOGIN PASSWORD 'the right one'");
    // pg_hba.conf is read top down: put the password rule before initdb's trust lines.
    const hba = join(cluster.dataDir, 'pg_hba.conf');
    writeFileSync(hba, `host all backup_operator 127.0.0.1/32 scram-sha-256\n${readFileSync(hba, 'utf8')}`);
    await cluster.query('SELECT pg_reload_conf()');
    const noPassFile = join(stateDir, 'no-such-pgpass');
    const operator = { ...env, PGHOST: '127.0.0.1', PGUSER: 'backup_operator', PGPASSFILE: noPassFile };

    for (const credentials of [{ PGPASSWORD: 'a wrong one' }, {}]) {
      const result = await pgsnap(['begin', '--label', 'nightly', '--json'], { ...operator, ...credentials });
      expectError(
        result,
        1,
        'ConnectionError',
        /user backup_operator.*set PGPASSWORD or a PGPASSFILE entry for this host, port and user/i,
      );
    }

    // The same role gets through with a PGPASSFILE entry: the advice works.
    const passFile = join(stateDir, 'pgpass');
    writeFileSync(passFile, `127.0.0.1:${cluster.port}:*:backup_operator:the right one\n`);
    chmodSync(passFile, 0o600);
    const preflight = await pgsnap(['preflight', '--json'], { ...operator, PGPASSFILE: passFile });
    expect(preflight.code, preflight.stderr).toBe(3);
    expect(preflight.json).toMatchObject({ ok: false });
    await expectNotInBackup(cluster, env);
  });
});
