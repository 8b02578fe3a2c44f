import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import {
  durationOrSeconds,
  settingDescriptors,
  settingsFrom,
  settingsTable,
} from '../../agent/host/settings.ts';

describe('agent settings', () => {
  test('a flag wins over its variable, a variable over the default', () => {
    const env = { PGSNAP_CLUSTER: 'from-env', PGSNAP_REPO: 'file:///env', HOME: '/home/x' };
    expect(settingsFrom({}, env)).toMatchObject({
      cluster: 'from-env',
      repo: 'file:///env',
      maxDurationMs: 3_600_000,
    });
    expect(settingsFrom({ cluster: 'from-flag', 'max-duration': '2h' }, env)).toMatchObject({
      cluster: 'from-flag',
      maxDurationMs: 7_200_000,
    });
    expect(settingsFrom({ 'state-dir': '/srv/state' }, env).stateDir).toBe('/srv/state');
    expect(settingsFrom({}, { PGSNAP_STATE_DIR: '/var/state' }).stateDir).toBe('/var/state');
  });

  test('the two state machines come from the same flag and different variables', () => {
    const env = { PGSNAP_STATE_MACHINE_ARN: 'arn:backup', PGSNAP_RESTORE_STATE_MACHINE_ARN: 'arn:restore' };
    expect(settingsFrom({}, env)).toMatchObject({
      backupStateMachine: 'arn:backup',
      restoreStateMachine: 'arn:restore',
    });
  });

  test('a bad cluster name or duration is refused with the flag it came from', () => {
    expect(() => settingsFrom({ cluster: 'Bad Name' }, {})).toThrow(/cluster name "Bad Name" is not valid/);
    expect(() => settingsFrom({}, { PGSNAP_CLUSTER: 'Bad Name' })).toThrow(
      /cluster name "Bad Name" is not valid/,
    );
    expect(() => settingsFrom({ 'archive-timeout': '600' }, {})).toThrow(
      /--archive-timeout "600" is not a duration/,
    );
    expect(() => settingsFrom({ 'max-duration': '30d' }, {})).toThrow(
      /--max-duration 30d is longer than pgsnap can time/,
    );
  });

  test('one duration syntax; --recovery-timeout still takes the bare seconds it took before', () => {
    expect(settingsFrom({ 'recovery-timeout': '3600' }, {}).recoveryTimeoutMs).toBe(3_600_000);
    expect(settingsFrom({ 'recovery-timeout': '1h30m' }, {}).recoveryTimeoutMs).toBe(5_400_000);
    expect(settingsFrom({}, {}).recoveryTimeoutMs).toBe(21_600_000);
    expect(durationOrSeconds('90s', '--x')).toBe(90_000);
    expect(() => durationOrSeconds('0', '--x')).toThrow(/--x 0: give a duration/);
    expect(() => durationOrSeconds('ten', '--x')).toThrow(/--x "ten" is not a duration/);
  });

  test('every PGSNAP_* variable the agent reads is in the settings table', () => {
    const table = settingsTable();
    const variables = Object.values(settingDescriptors).flatMap((d) => ('env' in d ? [d.env] : []));
    expect(variables.length).toBeGreaterThan(5);
    for (const variable of variables) expect(table).toContain(`\`${variable}\``);
    // docs/settings.md is the table as npm run docs writes it.
    expect(readFileSync('docs/settings.md', 'utf8')).toContain(table);
  });

  test('every PGSNAP_* name in the agent, and each agent variable the harness sets, is a setting', () => {
    const settings = new Set<string>(
      Object.values(settingDescriptors).flatMap((d) => ('env' in d ? [d.env] : [])),
    );
    // What the agent hands to the snapshot commands it runs (pgsnap run, the exec provider): never read by it.
    const givenToCommands = new Set(['PGSNAP_BACKUP_ID', 'PGSNAP_START_LSN', 'PGSNAP_PATHS']);
    // The Lambdas' environment, which local/ sets for the functions it runs: not the agent's. The catalog's
    // URL (PGSNAP_CATALOG) is read by the domain module every first step shares.
    const lambdaVariables = new Set(
      [...sourceFiles('functions'), 'domain/catalog.ts'].flatMap((file) => pgsnapNames(file)),
    );
    const unlisted: string[] = [];
    for (const file of sourceFiles('agent')) {
      const text = readFileSync(file, 'utf8');
      for (const name of pgsnapNames(file)) {
        if (givenToCommands.has(name)) {
          expect(text, `${file} reads ${name}`).not.toMatch(new RegExp(`env(\\.|\\[')${name}`));
        } else if (!settings.has(name)) unlisted.push(`${file}: ${name}`);
      }
    }
    for (const file of sourceFiles('local')) {
      for (const name of pgsnapNames(file)) {
        if (!settings.has(name) && !lambdaVariables.has(name)) unlisted.push(`${file}: ${name}`);
      }
    }
    expect(unlisted).toEqual([]);
  });
});

/** The TypeScript and JavaScript sources below `dir`. */
function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((path) => /\.(ts|mjs|js)$/.test(path))
    .map((path) => join(dir, path));
}

/** The PGSNAP_* names a file mentions (not the build's __PGSNAP_VERSION__). */
function pgsnapNames(file: string): string[] {
  return [...new Set(readFileSync(file, 'utf8').match(/(?<![A-Za-z0-9_])PGSNAP_[A-Z_]+/g) ?? [])];
}
