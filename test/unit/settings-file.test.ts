import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { settingsFrom } from '../../agent/host/settings.ts';
import { loadSettingsFile, parseSettingsFile } from '../../agent/host/settings-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'pgsnap-settings-file-'));
chmodSync(dir, 0o755);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function settingsFile(name: string, text: string, mode = 0o644): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

describe('the settings file', () => {
  test('KEY=value lines as the shell sources them: comments, export, quotes; other keys ignored', () => {
    const values = parseSettingsFile(
      [
        '# written by pgsnap agent install',
        'PGSNAP_REPO=s3://bucket/pg',
        "export PGSNAP_CLUSTER='orders-db'",
        'PGHOST="/var/run/postgresql"',
        'AWS_REGION=eu-west-1  # the bucket',
        'PATH=/tmp/evil',
        '',
      ].join('\n'),
      '/etc/pgsnap/pgsnap.env',
    );
    expect(values).toEqual({
      PGSNAP_REPO: 's3://bucket/pg',
      PGSNAP_CLUSTER: 'orders-db',
      PGHOST: '/var/run/postgresql',
      AWS_REGION: 'eu-west-1',
    });
    expect(() => parseSettingsFile('PGSNAP_REPO s3://x\n', '/f')).toThrow(/\/f line 1 is not KEY=value/);
  });

  test('every command reads it below the environment and the flags', () => {
    const path = settingsFile('pgsnap.env', 'PGSNAP_REPO=file:///from-file\nPGSNAP_CLUSTER=file-db\n');
    const env: NodeJS.ProcessEnv = { PGSNAP_CONFIG: path, PGSNAP_CLUSTER: 'env-db' };
    expect(loadSettingsFile(env)).toBe(path);
    expect(settingsFrom({}, env)).toMatchObject({ repo: 'file:///from-file', cluster: 'env-db' });
    expect(settingsFrom({ repo: 'file:///from-flag' }, env).repo).toBe('file:///from-flag');
  });

  test('a file PGSNAP_CONFIG names must be there; the default one may be absent', () => {
    expect(() => loadSettingsFile({ PGSNAP_CONFIG: join(dir, 'missing.env') })).toThrow(
      /the settings file .*missing\.env \(PGSNAP_CONFIG\) cannot be read/,
    );
  });

  test('a file or directory others may write is refused, with what to do', () => {
    const path = settingsFile('open.env', 'PGSNAP_REPO=s3://attacker/pg\n', 0o666);
    const env: NodeJS.ProcessEnv = { PGSNAP_CONFIG: path };
    expect(() => loadSettingsFile(env)).toThrow(
      /refusing the settings file: its file .*open\.env .*mode 666.*chmod go-w/,
    );
    expect(env.PGSNAP_REPO).toBeUndefined();
    const shared = join(dir, 'shared');
    mkdirSync(shared, { mode: 0o777 });
    chmodSync(shared, 0o777);
    writeFileSync(join(shared, 'pgsnap.env'), 'PGSNAP_REPO=s3://x/pg\n', { mode: 0o644 });
    expect(() => loadSettingsFile({ PGSNAP_CONFIG: join(shared, 'pgsnap.env') })).toThrow(
      /its directory .*shared must belong to root/,
    );
  });
});
