/**
 * The password file, for the agent service, which connects with the settings
 * of the `begin` that asked, not with its own environment, so pg's own lookup
 * (process.env) cannot be used. The file is parsed and matched by `pgpass`,
 * the module pg itself uses; what libpq does beyond it is here: a socket
 * directory matches the host name `localhost`, and a file that is not plain or
 * that others may read is ignored (libpq-pgpass.html).
 */
import { createReadStream, statSync } from 'node:fs';
import helper from 'pgpass/lib/helper.js';

export interface PassTarget {
  host: string;
  port: number;
  database: string;
  user: string;
}

export function passwordFromFile(env: NodeJS.ProcessEnv, target: PassTarget): Promise<string | undefined> {
  const file = helper.getFileName(env);
  try {
    const stats = statSync(file);
    if (!stats.isFile() || (stats.mode & 0o077) !== 0) return Promise.resolve(undefined);
  } catch {
    return Promise.resolve(undefined);
  }
  const host = target.host.startsWith('/') ? 'localhost' : target.host;
  return new Promise((resolve) => helper.getPassword({ ...target, host }, createReadStream(file), resolve));
}
