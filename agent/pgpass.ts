/**
 * The password file, read as libpq reads it (libpq-pgpass.html): for the agent
 * service, which connects with the settings of the `begin` that asked, not
 * with its own environment, so pg's own lookup (process.env) cannot be used.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface PassTarget {
  host: string;
  port: number;
  database: string;
  user: string;
}

/** Splits `host:port:db:user:password` at unescaped colons, undoing `\:` and `\\`. */
function fields(line: string): string[] {
  const out: string[] = [];
  let current = '';
  for (let i = 0; i < line.length; i++) {
    const char = line[i]!;
    if (char === '\\' && i + 1 < line.length) current += line[++i];
    else if (char === ':') {
      out.push(current);
      current = '';
    } else current += char;
  }
  out.push(current);
  return out;
}

export function passwordFromFile(env: NodeJS.ProcessEnv, target: PassTarget): string | undefined {
  const file = env.PGPASSFILE || join(env.HOME ?? '', '.pgpass');
  let text: string;
  try {
    // libpq ignores a password file that others may read.
    if ((statSync(file).mode & 0o077) !== 0) return undefined;
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  // libpq matches a Unix-domain socket connection with the host name localhost.
  const host = target.host.startsWith('/') ? 'localhost' : target.host;
  const wanted = [host, String(target.port), target.database, target.user];
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const entry = fields(line.replace(/\r$/, ''));
    if (entry.length < 5) continue;
    if (wanted.every((value, i) => entry[i] === '*' || entry[i] === value)) return entry.slice(4).join(':');
  }
  return undefined;
}
