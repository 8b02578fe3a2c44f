/**
 * The host path: SSM pastes parameter values into the document's script. A
 * value is either refused by its allowedPattern/allowedValues (as SSM does
 * before running anything) or reaches pgsnap as exactly one argument.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { validateLabel } from '#domain/backup/input';
import { newBackupId, validateClusterName } from '#domain/ids';
import { agentDocumentParameters, agentSettingsLine } from '../../infra/backup/agent-document.ts';
import { replaceLine } from '../../local/agent-document.ts';
import {
  type DocumentParameter,
  documentPathLine,
  renderAgentDocument,
  runDocument,
} from '../support/ssm-document.ts';

type Name = DocumentParameter;
const render = renderAgentDocument;

const scratch = mkdtempSync(join(tmpdir(), 'pgsnap-document-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const fakeBin = join(scratch, 'bin');
const canary = join(scratch, 'pwned');
execFileSync('mkdir', ['-p', fakeBin]);
// Stands in for the agent: prints the arguments it received, one JSON array, and the token it was given in
// its environment as a last element.
writeFileSync(
  join(fakeBin, 'pgsnap'),
  `#!${process.execPath}\nprocess.stdout.write(JSON.stringify([...process.argv.slice(2), \`env:\${process.env.PGSNAP_TASK_TOKEN}\`]));\n`,
);
chmodSync(join(fakeBin, 'pgsnap'), 0o755);

/** Runs the rendered script with the fake agent first on PATH; returns the arguments pgsnap got. */
function run(values: Partial<Record<Name, string>>): string[] {
  const script = render(values);
  const output = execFileSync(
    'bash',
    ['-c', script.replace(documentPathLine, `export PATH=${fakeBin}:/usr/bin:/bin`)],
    {
      encoding: 'utf8',
    },
  );
  return JSON.parse(output);
}

const token = 'AQCEAAAAKgAAAAMAAAAAAAAAAaB+c/9Xz=='.padEnd(900, 'Ab0+/');
const backupId = newBackupId();
const valid = { cluster: 'orders-db', backupId, taskToken: token, heartbeatSeconds: '300' };

describe('values the document accepts reach pgsnap intact, one argument each', () => {
  test('begin with a label that has spaces and punctuation, and a fast checkpoint', () => {
    const label = 'nightly run 2026/11/21 12:00 @eu+1,x=y';
    expect(run({ ...valid, command: 'begin', label, fast: 'true', maxDuration: '90m' })).toEqual([
      'begin',
      '--volumes',
      '--label',
      label,
      '--backup-id',
      backupId,
      '--max-duration',
      '90m',
      '--fast',
      '--cluster',
      'orders-db',
      '--heartbeat-seconds',
      '300',
      '--json',
      `env:${token}`,
    ]);
  });

  test('end and abort take only what they need, and name their backup', () => {
    expect(run({ ...valid, command: 'end' })).toEqual([
      'end',
      '--snapshots-pending',
      '--backup-id',
      backupId,
      '--cluster',
      'orders-db',
      '--heartbeat-seconds',
      '300',
      '--json',
      `env:${token}`,
    ]);
    expect(run({ ...valid, command: 'abort', reason: 'the state machine caught States.Timeout' })).toEqual([
      'abort',
      '--backup-id',
      backupId,
      '--reason',
      'the state machine caught States.Timeout',
      '--cluster',
      'orders-db',
      '--heartbeat-seconds',
      '300',
      '--json',
      `env:${token}`,
    ]);
  });
});

describe('the task token', () => {
  test('reaches pgsnap in its environment and is on no command line of the script', () => {
    for (const command of ['begin', 'end', 'abort']) {
      const argv = run({ ...valid, command });
      expect(argv.at(-1)).toBe(`env:${token}`);
      expect(argv.slice(0, -1).join(' ')).not.toContain(token.slice(0, 40));
      // The only line that holds the token assigns it to the variable: no command, so nothing in ps.
      const lines = render({ ...valid, command }).split('\n');
      expect(lines.filter((line) => line.includes(token))).toEqual([`export PGSNAP_TASK_TOKEN='${token}'`]);
    }
  });
});

const notRoot = process.getuid?.() === 0 ? undefined : 'they need root, which runs the document through SSM';
if (notRoot && process.env.CI) throw new Error(`CI must run the settings file tests, but ${notRoot}`);
if (notRoot) console.warn(`SKIPPING the /etc/pgsnap/pgsnap.env owner and mode tests: ${notRoot}`);

describe.skipIf(notRoot !== undefined)('the settings file root sources (/etc/pgsnap/pgsnap.env)', () => {
  /** The document with its settings file at `dir`/pgsnap.env (dir made with `dirMode`), run as root. */
  async function runWithSettings(dirMode: number, file: { mode: number; uid: number }) {
    const dir = mkdtempSync(join(scratch, 'etc-'));
    chmodSync(dir, dirMode);
    const settings = join(dir, 'pgsnap.env');
    writeFileSync(settings, `touch ${canary}\n`);
    chmodSync(settings, file.mode);
    chownSync(settings, file.uid, 0);
    const script = replaceLine(
      render({ ...valid, command: 'end' }),
      agentSettingsLine,
      `settings=${settings}`,
    );
    try {
      return await runDocument(script, fakeBin, { PATH: '/usr/bin:/bin' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  test('one that another user owns, or that group or others may write, is refused before anything runs', async () => {
    const nobody = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
    for (const [dirMode, file] of [
      [0o755, { mode: 0o600, uid: nobody }],
      [0o755, { mode: 0o666, uid: 0 }],
      [0o755, { mode: 0o620, uid: 0 }],
      [0o777, { mode: 0o600, uid: 0 }],
    ] as const) {
      const result = await runWithSettings(dirMode, file);
      expect(result.code, JSON.stringify({ dirMode, file })).toBe(3);
      expect(result.stderr).toContain('must belong to root and be writable by root only');
      expect(result.stdout).toBe('');
      expect(existsSync(canary)).toBe(false);
    }
  });

  test("root's own, writable by root only, is sourced", async () => {
    const result = await runWithSettings(0o755, { mode: 0o644, uid: 0 });
    expect(result.code, result.stderr).toBe(0);
    expect(existsSync(canary)).toBe(true);
    rmSync(canary);
  });
});

describe('hostile values are refused before anything runs', () => {
  const hostile = [
    "x'; touch CANARY; echo '",
    'x$(touch CANARY)',
    'x`touch CANARY`',
    'x\ntouch CANARY',
    'x" && touch CANARY && "',
    'x\\',
    'x;touch CANARY',
    'x|touch CANARY',
    '--fast',
    '-x',
    '',
  ].map((value) => value.replaceAll('CANARY', canary));

  const targets: Name[] = [
    'command',
    'cluster',
    'backupId',
    'label',
    'fast',
    'maxDuration',
    'reason',
    'taskToken',
    'heartbeatSeconds',
  ];
  for (const name of targets) {
    test(`${name}`, () => {
      for (const value of hostile) {
        expect(() => run({ ...valid, command: 'begin', [name]: value }), JSON.stringify(value)).toThrow(
          /refused/,
        );
      }
      expect(existsSync(canary)).toBe(false);
    });
  }

  test('a very long token or label is refused', () => {
    expect(() => run({ ...valid, command: 'end', taskToken: 'A'.repeat(4097) })).toThrow(
      /refused: taskToken/,
    );
    expect(() => run({ ...valid, command: 'begin', label: 'a'.repeat(129) })).toThrow(/refused: label/);
  });
});

describe("the repository is root's, never a parameter", () => {
  test('a file:// or any other repository in the command is refused, as SSM refuses an undeclared parameter', () => {
    for (const repository of [
      'file:///tmp/attacker',
      's3://another-bucket/pg',
      's3://backups.example/pgsnap',
    ]) {
      expect(() => render({ ...valid, command: 'begin', repository } as never)).toThrow(
        /refused: repository/,
      );
    }
  });

  test('the script names no repository: pgsnap takes PGSNAP_REPO from the settings file', () => {
    for (const command of ['begin', 'end', 'abort']) {
      expect(render({ ...valid, command })).not.toMatch(/--repo\b/);
      expect(run({ ...valid, command })).not.toContain('--repo');
    }
  });
});

describe("the document's patterns agree with the agent's own validation", () => {
  test('labels and cluster names the document admits, the agent accepts', () => {
    for (const label of ['nightly', 'a', 'weekly 2026/11:21 @x+y=z,w-v_u.t', `A${'b'.repeat(127)}`]) {
      expect(new RegExp(agentDocumentParameters.label.allowedPattern).test(label)).toBe(true);
      expect(validateLabel(label)).toBe(label);
    }
    for (const cluster of ['orders-db', 'a', 'pg.15_main', `a${'b'.repeat(62)}`]) {
      expect(new RegExp(agentDocumentParameters.cluster.allowedPattern).test(cluster)).toBe(true);
      expect(validateClusterName(cluster)).toBe(cluster);
    }
  });
});
