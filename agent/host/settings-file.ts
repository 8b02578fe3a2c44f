/** The one settings file every command reads (/etc/pgsnap/pgsnap.env, or the file PGSNAP_CONFIG names). */
import { closeSync, fstatSync, openSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { messageOf, PreconditionError } from '#domain/errors';

/** The settings file read when PGSNAP_CONFIG names none (`pgsnap agent install` writes it). */
export const defaultSettingsFile = '/etc/pgsnap/pgsnap.env';

/** The variables a settings file may set: pgsnap's own, libpq's and the AWS SDK's. */
const settingsFileKey = /^(PGSNAP_[A-Z0-9_]+|PG[A-Z]+|AWS_[A-Z0-9_]+)$/;

/** Which file was loaded, once per process (undefined: none). */
let loaded: { path: string | undefined } | undefined;

/**
 * Loads the settings file into `env` once: each of its variables that `env`
 * does not set already (the environment, and then a command's flags, win over
 * the file). Returns the file's path, or undefined when there is none. The
 * default file is skipped when it is absent or not readable by this user;
 * one PGSNAP_CONFIG names must be there.
 */
export function loadSettingsFile(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (loaded && env === process.env) return loaded.path;
  const named = env.PGSNAP_CONFIG || undefined;
  const path = resolve(named ?? defaultSettingsFile);
  const values = readSettingsFile(path, named !== undefined);
  for (const [key, value] of Object.entries(values ?? {})) {
    if (env[key] === undefined) env[key] = value;
  }
  const result = values ? path : undefined;
  if (env === process.env) loaded = { path: result };
  return result;
}

/**
 * The variables of the settings file at `path`, or undefined when it is
 * absent (or, unless `required`, not readable by this user). Refused, before
 * it is read, when it or its directory could be written by anyone but its
 * owner, or belongs to another user than root or this one: archive_command
 * runs whatever repository it names with the server's WAL.
 */
export function readSettingsFile(path: string, required: boolean): Record<string, string> | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!required && (code === 'ENOENT' || code === 'EACCES' || code === 'ENOTDIR')) return undefined;
    throw new PreconditionError(
      `the settings file ${path} (PGSNAP_CONFIG) cannot be read: ${messageOf(error)}`,
    );
  }
  try {
    requireSafe(path, fstatSync(fd), 'file');
    requireSafe(dirname(path), statSync(dirname(path)), 'directory');
    return parseSettingsFile(readFileSync(fd, 'utf8'), path);
  } finally {
    closeSync(fd);
  }
}

function requireSafe(path: string, stat: { uid: number; mode: number }, what: string): void {
  const self = process.getuid?.() ?? 0;
  if ((stat.uid !== 0 && stat.uid !== self) || (stat.mode & 0o022) !== 0) {
    throw new PreconditionError(
      `refusing the settings file: its ${what} ${path} must belong to root (or to this user, uid ${self}) ` +
        `and be writable by its owner only (owner uid ${stat.uid}, mode ${(stat.mode & 0o777).toString(8)}): ` +
        `chown root: ${path}; chmod go-w ${path}`,
    );
  }
}

/**
 * `KEY=value` lines as a shell sources them with `set -a` (the SSM document
 * and systemd's EnvironmentFile read the same file): `#` comments, an optional
 * `export `, a value optionally in single or double quotes. Other keys than
 * settingsFileKey's are ignored; a line that is not an assignment is refused.
 */
export function parseSettingsFile(text: string, path: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!match) {
      throw new PreconditionError(
        `${path} line ${index + 1} is not KEY=value: ${JSON.stringify(line.slice(0, 80))}`,
      );
    }
    const [, key, rawValue] = match as unknown as [string, string, string];
    const quoted = /^(['"])(.*)\1$/.exec(rawValue);
    const value = quoted ? quoted[2]! : rawValue.replace(/\s+#.*$/, '');
    if (settingsFileKey.test(key)) values[key] = value;
  }
  return values;
}
